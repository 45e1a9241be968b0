"""Builder port: turns a source tree into a runnable image inside a sandbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from cove.domain.template import BuildLimits

__all__ = ["BuildLimits", "Builder", "BuiltImage"]


@dataclass(frozen=True)
class BuiltImage:
    image: str  # a reference the runtime can start: here, the image id
    builder: str  # which builder detected the source


class Builder(Protocol):
    def unpack(self, archive: BinaryIO, dest: Path) -> int:
        """Unpack an uploaded tarball safely into `dest`; return the number of files."""
        ...

    def build(self, source: Path, tag: str, limits: BuildLimits,
              emit: Callable[[str], None]) -> BuiltImage:
        """Build `source`; stream output lines to `emit`; raise BuildFailed or Invalid."""
        ...
