"""Long work (builds, stack builds) runs in a thread; its events stream to the caller."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator

from cove.domain.events import FAILED, Event, Output, Result

Emit = Callable[[str], None]
log = logging.getLogger(__name__)


def in_background(work: Callable[[Emit], Result]) -> Iterator[Event]:
    """Start `work(emit)` in a thread; yield an Output for each line it emits, then the
    Result it returns (a failed one if it raised, so every stream ends with a result)."""
    events: queue.Queue[Event | None] = queue.Queue()

    def run() -> None:
        try:
            result = work(lambda text: events.put(Output(text)))
        except Exception as err:
            log.exception("background work failed")
            result = Result(FAILED, f"internal error: {err}")
        events.put(result)
        events.put(None)

    threading.Thread(target=run, daemon=True).start()
    return _drain(events)


def _drain(events: queue.Queue[Event | None]) -> Iterator[Event]:
    while (event := events.get()) is not None:
        yield event
