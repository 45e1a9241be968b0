"""An app's logs: its instances' output and Cove's own events about it."""

from __future__ import annotations

import heapq
import queue
import threading
from collections.abc import Iterator

from cove.domain.models import App, Space, User
from cove.domain.roles import Action
from cove.ports.runtime import LogLine, Stop
from cove.services.access import app_for
from cove.services.context import Context
from cove.services.pools import pool_of


def app_logs(ctx: Context, user: User, space_name: str, app_name: str, tail: int,
             follow: bool, stop: Stop | None = None) -> Iterator[LogLine]:
    """Developers may read logs (they can hold secrets); viewers may not. Access is checked
    at the call; the lines are read as the result is iterated."""
    with ctx.store.unit_of_work() as uow:
        space, app = app_for(uow, user, space_name, app_name, Action.DEPLOY)
    return _lines(ctx, space, app, tail, follow, stop)


def _lines(ctx: Context, space: Space, app: App, tail: int, follow: bool,
           stop: Stop | None) -> Iterator[LogLine]:
    pool = pool_of(ctx, space)
    # Cove's events for the app are in its own log; the instances' output comes from the
    # pool. The last `tail` lines of both, in time order, then (follow) both as they come.
    merged = list(heapq.merge(ctx.logs.read(app.id, tail),
                              pool.logs(space.name, app.name, tail, False, app_id=app.id),
                              key=lambda line: line.time))
    yield from merged[-tail:] if tail > 0 else []
    if follow:
        yield from _merge_live(ctx.logs.follow(app.id, 0, stop),
                               pool.logs(space.name, app.name, 0, True, stop, app_id=app.id))


def _merge_live(*sources: Iterator[LogLine]) -> Iterator[LogLine]:
    lines: queue.Queue[LogLine | None] = queue.Queue()

    def pump(source: Iterator[LogLine]) -> None:
        for line in source:
            lines.put(line)
        lines.put(None)

    for source in sources:
        threading.Thread(target=pump, args=(source,), daemon=True).start()
    finished = 0
    while finished < len(sources):
        line = lines.get()
        if line is None:
            finished += 1
        else:
            yield line
