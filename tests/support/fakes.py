"""In-memory fakes of the runtime ports, with failure injection, for fast unit tests."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cove.domain.checks import Check
from cove.domain.errors import DeployFailed, ImageError
from cove.ports.pool import AppState, Autoscaling, Pool, SpaceState
from cove.ports.registry import Credentials, Destination, ImageResolver
from cove.ports.router import Gone, HealthCheck, Route, Router
from cove.ports.runtime import Instance, InstanceSpec, LogLine, Logs, Posture, Runtime, Stop

START_LOCK = threading.Lock()


@dataclass
class FakeRuntime:
    spaces: set[str] = field(default_factory=set)
    running: dict[str, Instance] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    fail_start: bool = False
    next_ip: int = 2
    once_exit_code: int = 0
    exit_on_start: int | None = None  # instances end at once with this code
    fail_stop: bool = False

    def ensure_space(self, space: str) -> None:
        self.spaces.add(space)

    def remove_space(self, space: str) -> None:
        self.spaces.discard(space)

    def start(self, spec: InstanceSpec) -> Instance:
        if self.fail_start:
            raise DeployFailed("injected start failure")
        with START_LOCK:  # the pool starts instances from several threads at once
            self.next_ip += 1
            address = f"10.0.0.{self.next_ip}:8000"
        inst = Instance(spec.name, spec.app_id, spec.space, spec.app, spec.process, spec.index,
                        spec.release, "running", address,
                        started_at=dt.datetime.now(dt.UTC), fingerprint=spec.fingerprint,
                        labels={"env": repr(sorted(spec.env.items()))})
        self.running[spec.name] = inst
        self.started.append(spec.name)
        if self.exit_on_start is not None:
            self.crash(spec.name, self.exit_on_start)
        return inst

    def stop(self, name: str, grace_seconds: int = 10) -> None:
        if self.fail_stop:
            raise TimeoutError(f"injected: stopping {name} timed out")
        if self.running.pop(name, None) is not None:
            self.stopped.append(name)

    def instances(self, app_id: int | None = None) -> list[Instance]:
        return [i for i in self.running.values() if app_id is None or i.app_id == app_id]

    def exited(self, name: str) -> str | None:
        inst = self.running.get(name)
        if inst is None:
            return "it is gone"
        return None if inst.state == "running" else f"it exited with code {inst.exit_code}"

    def run_once(self, spec: InstanceSpec, timeout: float) -> tuple[int, str]:
        self.started.append(spec.name)
        return self.once_exit_code, "ran once"

    def posture(self, app_id: int) -> list[Posture]:
        """Every instance as the restricted profile runs it, tagged with its release."""
        return [Posture(i.process, 10001, True, True, True, True, True, 128, 250,
                        f"release-{i.release}", False, instance=i.name)
                for i in self.instances(app_id) if i.state == "running"]

    def space_checks(self, space: str) -> list[Check]:
        return []

    def crash(self, name: str, code: int = 3) -> None:
        self.running[name].state = "exited"
        self.running[name].exit_code = code
        self.running[name].address = None


@dataclass
class FakeLogs:
    lines: dict[int, list[str]] = field(default_factory=dict)
    fail_on: str | None = None  # recording an event containing this fails

    def read(self, app_id: int, tail: int) -> list[LogLine]:
        now = dt.datetime.now(dt.UTC)
        return [LogLine(now, "cove", t) for t in self.lines.get(app_id, [])][-tail:]

    def follow(self, app_id: int, tail: int, stop: Stop | None = None) -> Iterator[LogLine]:
        yield from self.read(app_id, tail)

    def read_instances(self, app_id: int, tail: int) -> list[LogLine]:
        return []

    def follow_instances(self, app_id: int, tail: int,
                         stop: Stop | None = None) -> Iterator[LogLine]:
        return iter([])

    def record(self, app_id: int, text: str) -> None:
        if self.fail_on is not None and self.fail_on in text:
            raise OSError(f"injected: cannot write {text!r}")
        self.lines.setdefault(app_id, []).append(text)

    def forget(self, app_id: int) -> None:
        self.lines.pop(app_id, None)


@dataclass
class FakeResolver:
    images: dict[str, str] = field(default_factory=dict)  # reference -> digest reference
    published: list[tuple[str, str]] = field(default_factory=list)  # (image id, reference)

    def resolve(self, image: str, credentials: Credentials | None = None) -> str:
        if image not in self.images:
            raise ImageError(f"image {image} does not exist", code="image_not_found")
        return self.images[image]

    def publish(self, image_id: str, reference: str) -> str:
        self.published.append((image_id, reference))
        return "sha256:" + hashlib.sha256(image_id.encode()).hexdigest()


@dataclass
class FakeRouter:
    routes: list[Route] = field(default_factory=list)
    applies: int = 0
    history: list[list[Route]] = field(default_factory=list)  # every set of routes applied

    def apply(self, routes: list[Route]) -> bool:
        changed = routes != self.routes
        self.routes = routes
        self.applies += 1
        self.history.append(routes)
        return changed

    def serving(self) -> set[str]:
        return {b for r in self.routes for b in r.backends}

    def backends(self, app_id: int) -> tuple[str, ...]:
        return next((r.backends for r in self.routes if r.app_id == app_id), ())


@dataclass
class FakeHealth:
    unhealthy: set[str] = field(default_factory=set)  # addresses that never pass
    checked: list[str] = field(default_factory=list)

    def wait_healthy(self, address: str, path: str, timeout: float,
                     gone: Gone | None = None) -> str | None:
        self.checked.append(address)
        ended = gone() if gone is not None else None
        if ended is not None:
            return ended
        return f"{path} answered HTTP 503 after {timeout}s" if address in self.unhealthy else None


@dataclass
class FakePool:
    """A declarative pool that records what it was asked to run; can fail rollouts."""

    name: str = "fake"
    reconcile_interval: float = 0.0
    base_domain: str | None = None
    registry: Destination | None = None
    spaces: dict[str, SpaceState] = field(default_factory=dict)
    apps: dict[tuple[str, str], AppState] = field(default_factory=dict)
    fail_deploy: bool = False
    deploys: list[tuple[AppState, AppState | None]] = field(default_factory=list)

    @property
    def takes_builds(self) -> bool:
        return self.registry is not None

    def provision_space(self, space: SpaceState) -> int:
        self.spaces[space.name] = space
        return 1

    def remove_space(self, space: str) -> None:
        self.spaces.pop(space, None)
        self.apps = {k: v for k, v in self.apps.items() if k[0] != space}

    def deploy(self, app: AppState, previous: AppState | None, timeout: float) -> None:
        self.deploys.append((app, previous))
        if self.fail_deploy:
            raise DeployFailed(f"{app.app} v{app.release} did not become ready")
        self.apps[(app.space, app.app)] = app

    def apply(self, app: AppState) -> int:
        changed = self.apps.get((app.space, app.app)) != app
        self.apps[(app.space, app.app)] = app
        return int(changed)

    def reconcile(self, apps: list[AppState], spaces: Sequence[SpaceState] = ()) -> int:
        return sum(self.provision_space(space) for space in spaces) + \
            sum(self.apply(app) for app in apps)

    def remove_app(self, space: str, app: str) -> None:
        self.apps.pop((space, app), None)

    def instances(self, space: str, app: str | None = None) -> list[Instance]:
        return [Instance(f"{s.app}-{p.name}-{i}", 0, space, s.app, p.name, i, s.release,
                         "running", None, labels={"ready": "true"})
                for (where, name), s in sorted(self.apps.items())
                if where == space and app in (None, name)
                for p in s.processes for i in range(1, p.count + 1)]

    def logs(self, space: str, app: str, tail: int, follow: bool,
             stop: Stop | None = None, app_id: int = 0) -> Iterator[LogLine]:
        return iter([])


@dataclass
class FakeAutoscalingPool(FakePool):
    """A pool with the Autoscaling capability."""

    autoscale_metric: str = "cpu"


def _conforms() -> None:
    """Never called: mypy checks here that each fake still fits the port it stands in for."""
    runtime: Runtime = FakeRuntime()
    logs: Logs = FakeLogs()
    resolver: ImageResolver = FakeResolver()
    router: Router = FakeRouter()
    health: HealthCheck = FakeHealth()
    pool: Pool = FakePool()
    autoscaling: Autoscaling = FakeAutoscalingPool()
    del runtime, logs, resolver, router, health, pool, autoscaling
