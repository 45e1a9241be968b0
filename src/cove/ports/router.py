"""Router port: maps hostnames to the addresses of an app's web instances."""

from __future__ import annotations

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


class HealthCheck(Protocol):
    def wait_healthy(self, address: str, path: str, timeout: float) -> str | None:
        """Return None once address answers 2xx/3xx on path, else a reason after timeout."""
        ...
