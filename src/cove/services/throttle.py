"""Login throttling: failures per account and per address, in a sliding window, and a cap
on password checks at once (each costs Argon2's memory and a core's time)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cove.domain.errors import RateLimited

WINDOW = 300.0  # seconds a failure counts
PER_ACCOUNT = 5  # failures of one account in the window, from anywhere
PER_ADDRESS = 20  # failures from one address in the window, whatever the account
AT_ONCE = 2  # password checks running at once (the machine has this many cores)
MAX_KEYS = 10_000  # accounts and addresses remembered before expired ones are swept


class LoginThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(AT_ONCE)

    def _recent(self, key: str) -> int:
        seen, cutoff = self._failures[key], self.clock() - WINDOW
        while seen and seen[0] < cutoff:
            seen.popleft()
        return len(seen)

    def check(self, account: str, address: str) -> None:
        """Refuse before any password is checked when either has failed too often."""
        with self._lock:
            for key, limit, what in ((f"account:{account}", PER_ACCOUNT, "this account"),
                                     (f"address:{address}", PER_ADDRESS, "your address")):
                if key == "address:":
                    continue  # no address (a password change): the account counts
                if self._recent(key) >= limit:
                    wait = int(self._failures[key][0] + WINDOW - self.clock()) + 1
                    raise RateLimited(f"too many failed logins for {what}: try again in "
                                      f"{wait} s")

    def failed(self, account: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) > MAX_KEYS:  # names sprayed at random must not pile up
                for key in [k for k in self._failures if not self._recent(k)]:
                    del self._failures[key]
            self._failures[f"account:{account}"].append(now)
            if address:
                self._failures[f"address:{address}"].append(now)

    @contextmanager
    def checking(self) -> Iterator[None]:
        """A slot to check a password in, or RateLimited at once when all are busy."""
        if not self._checks.acquire(timeout=5):
            raise RateLimited("too many logins at once: try again in a moment")
        try:
            yield
        finally:
            self._checks.release()
