"""Registry port: turns an image reference into an immutable digest reference."""

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
