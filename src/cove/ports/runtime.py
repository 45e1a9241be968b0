"""Runtime port: runs instances. No engine- or Kubernetes-specific words here."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cove.domain.checks import Check
from cove.domain.contract import PORT


@dataclass(frozen=True)
class InstanceSpec:
    """Everything needed to run one instance; produced by services from a release."""

    space: str
    app: str
    app_id: int
    process: str
    index: int
    release: int
    image: str  # digest reference
    command: list[str] | None
    env: dict[str, str]
    memory_mb: int
    cpu_millis: int
    pids: int
    run_as_uid: int
    tmp_size_mb: int
    port: int = PORT

    @property
    def name(self) -> str:
        # "_" appears in no space, app or process name: the parts cannot be confused
        # (with "-", space shop-alice + app my and space alice + app my-shop collided).
        return f"{self.space}_{self.app}_{self.process}_{self.index}_v{self.release}"

    @property
    def fingerprint(self) -> str:
        """Changes whenever a running instance would have to be replaced to match."""
        data = json.dumps([self.image, self.command, sorted(self.env.items()), self.memory_mb,
                           self.cpu_millis, self.pids, self.run_as_uid, self.tmp_size_mb,
                           self.port])
        return hashlib.sha256(data.encode()).hexdigest()[:16]


@dataclass
class Instance:
    """What the runtime reports about one instance it runs."""

    name: str
    app_id: int
    space: str
    app: str
    process: str
    index: int
    release: int
    state: str  # running, exited, created, ...
    address: str | None  # host:port the router and health checks reach
    exit_code: int | None = None
    fingerprint: str = ""
    started_at: dt.datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LogLine:
    time: dt.datetime
    source: str  # e.g. web.1 or cove
    text: str


class Runtime(Protocol):
    def ensure_space(self, space: str) -> None: ...
    def remove_space(self, space: str) -> None: ...
    def start(self, spec: InstanceSpec) -> Instance: ...
    def stop(self, name: str, grace_seconds: int = 10) -> None: ...
    def instances(self, app_id: int | None = None) -> list[Instance]: ...

    def exited(self, name: str) -> str | None:
        """None while the instance runs; once it has ended, how: its exit code and the
        last lines it wrote."""
        ...

    def run_once(self, spec: InstanceSpec, timeout: float) -> tuple[int, str]:
        """Run a one-off instance to completion; return its exit code and output."""
        ...


# Asked between lines of a followed stream: True ends it (its client went away, or its
# time is up).
Stop = Callable[[], bool]


class Logs(Protocol):
    """Optional capability: recent and streaming logs of an app."""

    def read(self, app_id: int, tail: int) -> list[LogLine]: ...
    def follow(self, app_id: int, tail: int, stop: Stop | None = None) -> Iterator[LogLine]: ...
    def record(self, app_id: int, text: str) -> None: ...
    def forget(self, app_id: int) -> None: ...


@dataclass(frozen=True)
class Posture:
    """How one instance (or one process type's template) really runs, read back from the
    backend rather than from what Cove asked for: the facts `cove doctor` judges."""

    process: str
    uid: int | None  # None: the backend does not say (e.g. only runAsNonRoot)
    non_root: bool
    read_only_root: bool
    no_capabilities: bool
    no_new_privileges: bool
    seccomp: bool
    memory_limit_mb: int | None
    cpu_limit_millis: int | None
    image: str
    health_probe: bool  # the backend itself probes the instance's health
    instance: str = ""  # the instance's name where the backend reports one per instance


@runtime_checkable
class Inspectable(Protocol):
    """Optional capability: the local runtime reports what its instances really run with
    and how a space is kept apart."""

    def posture(self, app_id: int) -> list[Posture]: ...
    def space_checks(self, space: str) -> list[Check]: ...
