"""Registry port: turns an image reference into an immutable digest reference, and
publishes images Cove built to the registry a pool pulls from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class ImageResolver(Protocol):
    def resolve(self, image: str, credentials: Credentials | None = None) -> str:
        """Return repository@sha256:... and make it runnable locally; raise ImageError."""
        ...

    def publish(self, image_id: str, reference: str) -> str:
        """Push a locally built image to `reference` (registry/name:tag); return its digest
        (sha256:...); raise ImageError when the registry refuses or cannot be reached."""
        ...


@dataclass(frozen=True)
class Destination:
    """Where a pool's built images go: pushed to `push`, pulled by the pool's nodes from
    `pull` (the same registry, under the name the nodes know it by)."""

    push: str  # host[:port][/prefix]
    pull: str

    def repository(self, space: str, app: str) -> tuple[str, str]:
        return f"{self.push}/{space}/{app}", f"{self.pull}/{space}/{app}"
