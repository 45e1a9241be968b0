"""Pool port: a backend that runs whole apps declaratively (e.g. a Kubernetes cluster).

The local pool is driven instance by instance by Cove's own rollout and reconciler; a
declarative pool receives the desired state of a space or an app and rolls it out
itself. Nothing here names a Kubernetes object.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cove.domain.checks import Check
from cove.domain.models import Autoscale
from cove.domain.roles import Role
from cove.domain.sizes import Size
from cove.domain.template import SpaceTemplate
from cove.ports.registry import Destination
from cove.ports.runtime import Instance, LogLine, Posture


@dataclass(frozen=True)
class SpaceState:
    name: str
    template: SpaceTemplate
    members: tuple[tuple[str, Role], ...] = ()


@dataclass(frozen=True)
class ProcessState:
    name: str
    command: list[str] | None
    count: int
    size: Size
    autoscale: Autoscale | None = None


@dataclass(frozen=True)
class AppState:
    """Everything a pool needs to run one release of an app with its formation."""

    space: str
    app: str
    release: int
    image: str
    config: dict[str, str]
    processes: tuple[ProcessState, ...]
    hostnames: tuple[str, ...]
    health_path: str = "/"
    health_timeout: int = 30
    run_as_uid: int = 10001
    tmp_size_mb: int = 64
    grace_seconds: int = 10


AUTOSCALE = "autoscale"  # an optional capability: the pool sizes processes itself


class Pool(Protocol):
    name: str
    capabilities: frozenset[str]
    base_domain: str | None  # apps are served at <app>-<space>.<base_domain>; None: Cove's
    registry: Destination | None  # where images built from source go; None: no builds

    def provision_space(self, space: SpaceState) -> int:
        """Create or update a space; return how many objects changed."""
        ...

    def remove_space(self, space: str) -> None: ...

    def deploy(self, app: AppState, previous: AppState | None, timeout: float) -> None:
        """Roll out `app`; on failure raise DeployFailed with `previous` still serving."""
        ...

    def apply(self, app: AppState) -> int:
        """Make the pool match `app` without waiting (reconcile); return objects changed."""
        ...

    def reconcile(self, apps: list[AppState]) -> int:
        """`apply` for many apps at once, in as few requests as the pool can."""
        ...

    def remove_app(self, space: str, app: str) -> None: ...

    def instances(self, space: str, app: str) -> list[Instance]: ...

    def logs(self, space: str, app: str, tail: int, follow: bool,
             stop: float | None = None) -> Iterator[LogLine]:
        """The instances' output, oldest first; with follow, new lines until `stop`."""
        ...


@runtime_checkable
class SelfChecking(Protocol):
    """Optional capability: a pool that can tell whether it is ready for Cove (doctor)."""

    def preflight(self) -> list[Check]: ...


@runtime_checkable
class InspectablePool(Protocol):
    """Optional capability: a pool reports what an app's instances really run with and how
    a space is kept apart (doctor)."""

    def posture(self, space: str, app: str) -> list[Posture]: ...
    def space_checks(self, space: str) -> list[Check]: ...
