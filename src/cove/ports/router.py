"""Router port: maps hostnames to the addresses of an app's web instances."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Route:
    app_id: int
    hostnames: tuple[str, ...]
    backends: tuple[str, ...]  # host:port


class Router(Protocol):
    def apply(self, routes: list[Route]) -> bool:
        """Make the router serve exactly these routes; return True if anything changed."""
        ...

    def serving(self) -> set[str]:
        """The backends (host:port) the router sends traffic to now, as it holds them (it
        outlives Cove's process: after a restart this is what carries traffic)."""
        ...


# Asked while waiting for a health check: why the instance is gone (it exited), or None.
Gone = Callable[[], str | None]


class HealthCheck(Protocol):
    def wait_healthy(self, address: str, path: str, timeout: float,
                     gone: Gone | None = None) -> str | None:
        """Return None once address answers 2xx/3xx on path, else a reason: after timeout,
        or as soon as `gone` says why the instance will never answer."""
        ...
