"""Long work (builds, stack builds) runs in a thread; its output streams to the caller."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

Emit = Callable[[str], None]


def in_background(work: Callable[[Emit], None]) -> Iterator[str]:
    """Start `work(emit)` in a thread; yield each line it emits until it returns.

    The work must report its own failures as lines: the stream only ends.
    """
    lines: queue.Queue[str | None] = queue.Queue()

    def run() -> None:
        try:
            work(lines.put)
        finally:
            lines.put(None)

    threading.Thread(target=run, daemon=True).start()
    return _drain(lines)


def _drain(lines: queue.Queue[str | None]) -> Iterator[str]:
    while (line := lines.get()) is not None:
        yield line
