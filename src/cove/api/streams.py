"""Long responses (followed logs, builds, git) without holding the API's workers.

A streamed body is produced by a thread of its own and handed to the event loop through
a small queue, so a thousand idle `logs -f` cost threads that sleep, not the request
workers every other call needs. When the client goes away, the producer is told to stop.
Each user may hold only so many streams at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from cove.domain.errors import RateLimited

MAX_STREAMS_PER_USER = 8
_DONE = object()


class StreamLimits:
    def __init__(self, per_user: int = MAX_STREAMS_PER_USER,
                 what: str = "streams (logs -f, builds)") -> None:
        self.per_user = per_user
        self.what = what
        self._open: dict[int, int] = {}
        self._lock = threading.Lock()

    def take(self, user_id: int) -> Callable[[], None]:
        """Count one more open stream of the user; return what ends it."""
        with self._lock:
            if self._open.get(user_id, 0) >= self.per_user:
                raise RateLimited(f"you already have {self.per_user} {self.what} open: end "
                                  "one first")
            self._open[user_id] = self._open.get(user_id, 0) + 1
        done = threading.Event()

        def release() -> None:
            if not done.is_set():
                done.set()
                with self._lock:
                    self._open[user_id] -= 1

        return release


async def pumped(chunks: Iterator[bytes], release: Callable[[], None] = lambda: None,
                 stopped: threading.Event | None = None) -> AsyncIterator[bytes]:
    """Iterate `chunks` in a thread of its own; yield what it yields. `stopped` is set when
    the client goes away (a producer that waits for news should ask it); `release` runs
    once the producer has ended."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=64)
    stopped = stopped or threading.Event()

    def hand_over(item: Any) -> bool:
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not stopped.is_set():
            try:
                future.result(timeout=0.5)  # back-pressure: a slow client slows the producer
                return True
            except TimeoutError:
                continue
        future.cancel()
        return False

    def run() -> None:
        try:
            for chunk in chunks:
                if stopped.is_set() or not hand_over(chunk):
                    break
        except Exception as err:  # the client sees the stream end; the log says why
            hand_over(f"\nstream ended: {err}\n".encode())
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            release()
            if not stopped.is_set():
                hand_over(_DONE)

    threading.Thread(target=run, daemon=True, name="stream").start()
    try:
        while (item := await queue.get()) is not _DONE:
            yield item
    finally:
        stopped.set()
