"""Quota checks that hold under concurrency.

A check and the write it allows happen under the space's lock, so two requests cannot
both fit into the last slot; a deploy, whose new formation is recorded only after its
rollout, reserves what it adds until then, so checks made meanwhile count it.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from cove.domain.quota import Usage


class QuotaLedger:
    def __init__(self) -> None:
        self._locks: defaultdict[int, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()
        self._reserved: dict[int, Usage] = {}

    @contextmanager
    def hold(self, space_id: int) -> Iterator[Usage]:
        """The space's lock, and what deploys in flight have reserved in it."""
        with self._guard:
            lock = self._locks[space_id]
        with lock:
            yield self._reserved.get(space_id, Usage())

    @contextmanager
    def reserve(self, space_id: int, usage: Usage) -> Iterator[None]:
        """Count `usage` in the space until the block ends (call it holding the lock). A
        shrinking formation frees nothing before it is recorded."""
        usage = Usage(*(max(0, n) for n in (usage.apps, usage.instances, usage.memory_mb,
                                            usage.cpu_millis)))
        with self._guard:
            self._reserved[space_id] = self._reserved.get(space_id, Usage()) + usage
        try:
            yield
        finally:
            with self._guard:
                self._reserved[space_id] = self._reserved[space_id] - usage
