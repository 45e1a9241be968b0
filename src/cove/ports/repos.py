"""Source repositories port: one git repository per app, served over smart HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol


@dataclass
class GitResponse:
    status: int
    headers: dict[str, str]
    body: Iterator[bytes]


class Repos(Protocol):
    def ensure(self, space: str, app: str) -> None: ...
    def remove(self, space: str, app: str) -> None: ...

    def serve(self, space: str, app: str, method: str, path: str, query: str,
              content_type: str, body: BinaryIO, env: dict[str, str]) -> GitResponse:
        """Answer one smart-HTTP request; `env` reaches the push hooks."""
        ...
