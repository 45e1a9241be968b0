"""Builder port: turns a source tree into a runnable image inside a sandbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from cove.domain.template import BuildLimits

__all__ = ["BuildLimits", "Builder", "BuiltImage", "StackImage"]


@dataclass(frozen=True)
class BuiltImage:
    image: str  # a reference the runtime can start: here, the image id
    builder: str  # which builder detected the source


@dataclass(frozen=True)
class StackImage:
    """One of the images buildpacks use: `build` (compilers, package managers) or `run`."""

    role: str
    image: str
    id: str | None  # None: not built yet
    created: str | None = None
    size_mb: int | None = None


class Builder(Protocol):
    def unpack(self, archive: BinaryIO, dest: Path) -> int:
        """Unpack an uploaded tarball safely into `dest`; return the number of files."""
        ...

    def build(self, source: Path, tag: str, limits: BuildLimits,
              emit: Callable[[str], None], scope: str = "") -> BuiltImage:
        """Build `source`; stream output lines to `emit`; raise BuildFailed or Invalid.

        Builds of one `scope` (a space) may share cached layers; different scopes never.
        """
        ...

    def stacks(self) -> list[StackImage]:
        """The build and run images the buildpacks use, and whether they exist."""
        ...

    def build_stacks(self, emit: Callable[[str], None]) -> None:
        """(Re)make the build and run images; stream progress to `emit`."""
        ...

    def remove_interrupted(self) -> int:
        """At start: stop and remove what builds cut off by the last server's end left
        running or on disk; return how many builds that was."""
        ...

    def forget(self, repository: str) -> int:
        """Remove the built images tagged in `repository`; return how many tags went."""
        ...
