"""HTTP health checks against an instance's address."""

from __future__ import annotations

import time

import httpx

from cove.domain.contract import PORT
from cove.ports.router import Gone

GONE_EVERY = 0.5  # seconds between asks whether the instance is still running


class HttpHealthCheck:
    def __init__(self, interval: float = 0.2, first: float = 0.01) -> None:
        self.interval = interval  # the longest wait between two tries
        self.first = first  # the first wait: most apps answer within tens of milliseconds

    def wait_healthy(self, address: str, path: str, timeout: float,
                     gone: Gone | None = None) -> str | None:
        deadline = time.monotonic() + timeout
        reason = "no answer"
        asked = time.monotonic()
        wait = self.first
        with httpx.Client(timeout=min(2.0, max(timeout, 0.5)), follow_redirects=False) as client:
            while True:
                if gone is not None and time.monotonic() - asked >= GONE_EVERY:
                    asked = time.monotonic()
                    ended = gone()
                    if ended is not None:
                        return ended  # an instance that died will not answer: say so now
                try:
                    response = client.get(f"http://{address}{path}")
                    if response.status_code < 400:
                        return None
                    reason = f"{path} answered HTTP {response.status_code}"
                except httpx.HTTPError as err:
                    reason = f"no HTTP answer on port {PORT} ({type(err).__name__})"
                if time.monotonic() + wait >= deadline:
                    return f"{reason} after {timeout:g}s"
                time.sleep(wait)
                wait = min(wait * 2, self.interval)
