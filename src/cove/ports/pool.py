"""Pool port: a backend that runs whole apps declaratively, the one seam to every backend.

The embedded podman runtime and a Kubernetes cluster are both pools: services hand a pool
the desired state of a space or an app and it rolls it out, converges and routes it
itself. Optional features are capabilities, typed Protocols a pool implements or not
(checked with isinstance), the way a service asks "can this pool autoscale?". Nothing
here names a Kubernetes object or a container engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cove.domain.checks import Check
from cove.domain.contract import RUN_AS_UID
from cove.domain.models import Autoscale
from cove.domain.roles import Role
from cove.domain.sizes import Size
from cove.domain.template import SpaceTemplate
from cove.ports.registry import Destination
from cove.ports.runtime import Instance, LogLine, Posture, Stop


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
    run_as_uid: int = RUN_AS_UID
    tmp_size_mb: int = 64
    grace_seconds: int = 10
    app_id: int = 0  # Cove's id of the app (names its logs and labels its instances)
    release_command: ProcessState | None = None  # once, before a new release takes traffic

    @property
    def key(self) -> tuple[str, str]:
        return (self.space, self.app)


class Pool(Protocol):
    name: str
    base_domain: str | None  # apps are served at <app>-<space>.<base_domain>; None: Cove's
    # Images built from source: pushed to `registry` for the pool to pull, or (None) run
    # from this machine's image store; a pool that can do neither does not take builds.
    registry: Destination | None
    reconcile_interval: float  # seconds between reconcile passes (0: every tick)

    @property
    def takes_builds(self) -> bool: ...


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

    def reconcile(self, apps: list[AppState], spaces: Sequence[SpaceState] = ()) -> int:
        """`provision_space` and `apply` for many spaces and apps at once, in as few
        requests as the pool can. Apps the pool runs that are neither here nor deployed
        since are not removed (they may be skipped because a deploy holds them);
        `remove_app` removes an app."""
        ...

    def remove_app(self, space: str, app: str) -> None: ...

    def instances(self, space: str, app: str | None = None) -> list[Instance]:
        """An app's instances, or (None) every app's of the space in one look;
        `labels["ready"] == "true"` on those that take traffic."""
        ...

    def logs(self, space: str, app: str, tail: int, follow: bool,
             stop: Stop | None = None, app_id: int = 0) -> Iterator[LogLine]:
        """The instances' output, oldest first; with follow, new lines until `stop`.
        `app_id` is Cove's id of the app (a pool may keep its logs by it)."""
        ...


@runtime_checkable
class Autoscaling(Protocol):
    """Optional capability: the pool sizes a process type itself (ProcessState.autoscale)
    between a minimum and a maximum, to hold a target of this metric."""

    autoscale_metric: str


@runtime_checkable
class ReleaseCommands(Protocol):
    """Optional capability: run a release's `release:` command once, with its image, config
    and limits, before the release takes traffic."""

    def run_release_command(self, app: AppState, timeout: float) -> None:
        """Raise DeployFailed (with the command's last words) unless it exits 0."""
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
