"""The embedded pool: apps as hardened containers on this machine, routed by Cove's nginx.

It implements the Pool port like a Kubernetes cluster does, and does by itself what a
cluster's controllers do there: a rollout starts the new instances, waits for their
health checks (readiness), switches the route, drains and stops the old ones (a rolling
update); a reconcile restarts crashed instances with exponential backoff (a kubelet's
CrashLoopBackOff), adopts running ones after a restart and removes orphans. It works on
the instance-level Runtime port (podman in production, a fake in unit tests).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from cove.crashpoints import crash_point
from cove.domain.checks import PASS, WARN, Check
from cove.domain.contract import app_env
from cove.domain.errors import DeployFailed
from cove.ports.pool import AppState, ProcessState, SpaceState
from cove.ports.registry import Destination
from cove.ports.router import HealthCheck, Route, Router
from cove.ports.runtime import (
    Inspectable,
    Instance,
    InstanceSpec,
    LogLine,
    Posture,
    Runtime,
    Stop,
)

log = logging.getLogger(__name__)
WEB = "web"
MAX_BACKOFF = 60.0
PROBE_TIMEOUT = 1.0  # a reconcile's health probe of an instance it did not start itself
STABLE_AFTER = 60.0  # an instance up this long starts its next backoff from the beginning
Key = tuple[str, str]  # (space, app)
Probe = tuple[Instance, AppState]  # an instance to probe, and its app's health check


def specs_for(app: AppState) -> list[InstanceSpec]:
    """The instances an app's state asks for, in a stable order (pure)."""
    specs = []
    for proc in app.processes:
        specs += [_spec(app, proc, index) for index in range(1, proc.count + 1)]
    return specs


def _spec(app: AppState, proc: ProcessState, index: int) -> InstanceSpec:
    return InstanceSpec(space=app.space, app=app.app, app_id=app.app_id, process=proc.name,
                        index=index, release=app.release, image=app.image,
                        command=proc.command,
                        env={**app.config, **app_env(app.app, app.space, app.release,
                                                     proc.name)},
                        memory_mb=proc.size.memory_mb, cpu_millis=proc.size.cpu_millis,
                        pids=proc.size.pids, run_as_uid=app.run_as_uid,
                        tmp_size_mb=app.tmp_size_mb)


@dataclass
class Crash:
    count: int  # crashes in a row
    next_try: float | None  # when the pending restart is due; None once restarted
    started: float = 0.0  # when it was last restarted


class InstanceLogs(Protocol):
    """What the pool needs of the log store: instance output per app, and a place for its
    own events (restarts, crashes)."""

    def record(self, app_id: int, text: str) -> None: ...
    def read_instances(self, app_id: int, tail: int) -> list[LogLine]: ...
    def follow_instances(self, app_id: int, tail: int,
                         stop: Stop | None = None) -> Iterator[LogLine]: ...


def _serving(app: AppState, ready: list[tuple[int, str]]) -> tuple[str, ...]:
    """The backends of an app's route: its ready web instances of its release, or, while
    none is ready yet, those of the newest release that still has some (after a restart
    the store may name a release whose instances never took traffic)."""
    releases = sorted({rel for rel, _ in ready}, reverse=True)
    release = app.release if app.release in releases else next(iter(releases), app.release)
    return tuple(sorted(addr for rel, addr in ready if rel == release))


class LocalPool:
    name: str = "local"
    base_domain: str | None = None  # Cove's own: <app>-<space>.<COVE_BASE_DOMAIN>
    registry: Destination | None = None  # images built here stay in this machine's store
    takes_builds: bool = True
    reconcile_interval: float = 0.0  # every tick: crashed instances restart within seconds

    def __init__(self, runtime: Runtime, router: Router, health: HealthCheck,
                 logs: InstanceLogs, *, drain_seconds: float = 1.0, grace_seconds: int = 10,
                 clock: Callable[[], float] = time.monotonic,
                 later: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.runtime = runtime
        self.router = router
        self.health = health
        self.log_store = logs
        self.drain_seconds = drain_seconds
        self.grace_seconds = grace_seconds
        self.clock = clock
        self.apps: dict[Key, AppState] = {}  # what this pool runs, as it was last told
        self.busy: set[Key] = set()  # apps being deployed: their instances are not orphans
        self.ready: set[str] = set()  # instances that passed their health check
        # Instances out of the route after a change returned: draining (`retiring`, which
        # a change that wants one again calls off), then being stopped (`stopping`, which a
        # start under the same name waits out: the stop would take the new instance).
        self.retiring: set[str] = set()
        self.stopping: set[str] = set()
        self._moves = 0  # instances started or stopped by this pool, ever
        # How work that outlives a change runs: a thread of its own (tests: at once).
        self._later = later or (lambda work: threading.Thread(
            target=work, daemon=True, name="retire").start())
        self._adopted = False  # has `ready` taken in what the router served at start?
        self.crashes: dict[str, Crash] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Condition(self._lock)  # `stopping` lost a name
        self._routes_lock = threading.Lock()

    # -- spaces -----------------------------------------------------------------------------

    def provision_space(self, space: SpaceState) -> int:
        self.runtime.ensure_space(space.name)
        return 0

    def remove_space(self, space: str) -> None:
        """Every instance of the space (known to this pool or not), then its network."""
        with self._lock:
            for key in [k for k in self.apps if k[0] == space]:
                del self.apps[key]
        self._drain_and_stop([i.name for i in self._running(space, None, None)])
        self.sync_routes()
        self.runtime.remove_space(space)

    # -- apps -------------------------------------------------------------------------------

    def deploy(self, app: AppState, previous: AppState | None, timeout: float) -> None:
        """A new release: start its instances, health-check them, switch the route, and
        return; the old ones drain and stop in the background (`_retire`). The same release
        with another formation or size converges instance by instance, waiting for the new
        ones to be healthy."""
        with self._lock:
            self.busy.add(app.key)
        try:
            if previous is not None and previous.release == app.release:
                running = self.runtime.instances(app.app_id)
                with self._lock:
                    self.apps[app.key] = app
                probes: list[Probe] = []
                self._converge(app, running, True, probes)
                self._run_probes(probes)
                self.sync_routes()
                crash_point("local.routed")
                return
            # What the new release replaces is listed while it starts (an engine command
            # off the way to traffic); only other releases' instances are retired.
            with ThreadPoolExecutor(max_workers=1) as lister:
                listed = lister.submit(self.runtime.instances, app.app_id)
                self._start_healthy(specs_for(app), app)
                running = listed.result()
            with self._lock:
                self.apps[app.key] = app
            self.sync_routes()
            crash_point("local.routed")
            # (The route names only the new release already: nothing to sync for these.)
            self._retire(app, [i.name for i in running if i.release != app.release],
                         routed=True)
        finally:
            with self._lock:
                self.busy.discard(app.key)

    def run_release_command(self, app: AppState, timeout: float) -> None:
        """Like Heroku's release phase: once per new release, with the release's image and
        config and the space's default size, before any of its instances start."""
        once = app.release_command
        if once is None:
            return
        spec = _spec(app, once, 1)
        self.log_store.record(app.app_id, f"running the release command of v{app.release}")
        code, output = self.runtime.run_once(spec, timeout)
        if code != 0:
            last = next((line for line in reversed(output.splitlines()) if line.strip()),
                        "no output")
            raise DeployFailed(f"the release command failed (exit {code}): {last}; the "
                               "previous release keeps serving")

    def apply(self, app: AppState) -> int:
        with self._lock:
            self.apps[app.key] = app
        probes: list[Probe] = []
        changed = self._converge(app, self.runtime.instances(app.app_id), False, probes)
        self._run_probes(probes)
        self.sync_routes()
        return changed

    def reconcile(self, apps: list[AppState], spaces: Sequence[SpaceState] = ()) -> int:
        """Every app in one pass: one listing of the instances, not one per app. (A
        space here is its network, made when the space is; nothing else drifts.)"""
        with self._lock:
            moves = self._moves
        running = self.runtime.instances()  # before the apps: see _orphans
        if not self._adopted:
            self._adopt(running)
        with self._lock:
            for app in apps:
                self.apps[app.key] = app
        by_app: dict[int, list[Instance]] = {}
        for inst in running:
            by_app.setdefault(inst.app_id, []).append(inst)
        changed = 0
        probes: list[Probe] = []
        for app in apps:
            try:
                changed += self._converge(app, by_app.get(app.app_id, []), False, probes)
            except Exception:  # keep reconciling the other apps
                log.exception("reconciling %s/%s failed", app.space, app.app)
        self._run_probes(probes)
        orphans = self._orphans(running)
        if orphans:
            log.info("removing %d orphaned instances", len(orphans))
            self._stop_all(orphans)
        # Nothing started or stopped since (by this pass or a deploy): the listing above
        # is still what runs, and a pass every few seconds need not list twice.
        with self._lock:
            still = self._moves == moves
        self.sync_routes(running if still else None)
        return changed + len(orphans)

    def _adopt(self, running: list[Instance]) -> None:
        """After a restart: the instances the router still sends traffic to carry it, and
        count as ready until a probe says otherwise. (Which instances passed their health
        check lived only in memory; the router's own configuration outlives the broker.)"""
        serving = self.router.serving()
        with self._lock:
            self.ready.update(i.name for i in running if i.state == "running"
                              and i.address in serving)
            self._adopted = True

    def _orphans(self, running: list[Instance]) -> list[str]:
        """Instances of no app this pool runs. `running` was listed before this looks at
        the apps, so an app deployed meanwhile is known (or busy) by now."""
        with self._lock:
            known = set(self.apps) | self.busy
        return [i.name for i in running if (i.space, i.app) not in known]

    def remove_app(self, space: str, app: str) -> None:
        with self._lock:
            state = self.apps.pop((space, app), None)
        self._drain_and_stop([i.name for i in self._running(space, app, state)])
        self.sync_routes()

    def instances(self, space: str, app: str | None = None) -> list[Instance]:
        found = self._running(space, app, self.apps.get((space, app)) if app else None)
        with self._lock:
            ready, retiring = set(self.ready), self.retiring | self.stopping
        for inst in found:
            inst.labels = {**inst.labels, "ready": str(inst.name in ready).lower(),
                           "retiring": str(inst.name in retiring).lower()}
        return sorted(found, key=lambda i: (i.app, i.process, i.index))

    def logs(self, space: str, app: str, tail: int, follow: bool,
             stop: Stop | None = None, app_id: int = 0) -> Iterator[LogLine]:
        """What the instances wrote, kept by app id (also when no release ever ran: a
        failed first deploy's crash output is what its user needs to read)."""
        state = self.apps.get((space, app))
        app_id = app_id or (state.app_id if state else 0)
        if not app_id:
            return iter([])
        if follow:
            return self.log_store.follow_instances(app_id, tail, stop)
        return iter(self.log_store.read_instances(app_id, tail))

    def _running(self, space: str, app: str | None, state: AppState | None) -> list[Instance]:
        """An app's instances (by its id when the pool knows it), or a whole space's."""
        if state is not None:
            return self.runtime.instances(state.app_id)
        return [i for i in self.runtime.instances()
                if i.space == space and (app is None or i.app == app)]

    # -- what doctor reads back -------------------------------------------------------------

    def posture(self, space: str, app: str) -> list[Posture]:
        state = self.apps.get((space, app))
        if state is None or not isinstance(self.runtime, Inspectable):
            return []
        # What serves: instances on their way out (drained in the background after a
        # change) are no longer the app's, and may be half stopped.
        with self._lock:
            leaving = self.retiring | self.stopping
        return [p for p in self.runtime.posture(state.app_id) if p.instance not in leaving]

    def space_checks(self, space: str) -> list[Check]:
        admission = Check("space", "admission", PASS, "instances are specified by Cove only "
                          "(restricted profile), never by the tenant",
                          "a tenant must not ask for root, host paths or capabilities")
        if not isinstance(self.runtime, Inspectable):
            return [admission, Check("space", "network isolation", WARN, "this runtime "
                                     "cannot report it", "unverified isolation",
                                     "ask the operator")]
        return [*self.runtime.space_checks(space), admission]

    # -- converging one app -----------------------------------------------------------------

    def _converge(self, app: AppState, running: list[Instance], wait: bool,
                  probes: list[Probe]) -> int:
        """Bring one app's instances in line with its state; return how many changed.
        Instances that are up but not yet known healthy go to `probes`, which the caller
        runs together (`_run_probes`)."""
        # Matched by what an instance is, not by its container's name (names changed once:
        # instances named the older way are adopted, not restarted).
        wanted = {(s.process, s.index, s.release): s for s in specs_for(app)}
        with self._lock:
            # Wanted again (scaled back up): called off. Already being stopped: as good as
            # gone, it is started anew once stopped.
            self.retiring.difference_update(
                i.name for i in running if (i.process, i.index, i.release) in wanted)
            running = [i for i in running if i.name not in self.stopping]
        by_key = {(i.process, i.index, i.release): i for i in running}
        to_stop = [i.name for key, i in by_key.items() if key not in wanted]
        to_stop += [i.name for i in running if by_key[(i.process, i.index, i.release)] is not i]
        to_start = []
        for key, spec in wanted.items():
            inst = by_key.get(key)
            if inst is None:
                to_start.append(spec)
            elif inst.fingerprint != spec.fingerprint:
                to_stop.append(inst.name)  # e.g. a new size: replace it
                to_start.append(spec)
            elif inst.state != "running":
                if self._crash_due(inst):
                    to_stop.append(inst.name)
                    to_start.append(spec)
            elif inst.name not in self.ready:
                probes.append((inst, app))
        if not wait:
            # A pass never takes away what carries traffic before its replacements do: the
            # old instances go once every wanted web instance has passed its health check.
            unready = any(s.process == WEB and (by_key.get(k) is None or
                                                by_key[k].name not in self.ready)
                          for k, s in wanted.items())
            if unready:  # (workers carry no traffic: old ones go at once, as ever)
                carrying = {i.name for i in running if i.process == WEB
                            and i.name in self.ready
                            and (i.process, i.index, i.release) not in wanted}
                to_stop = [n for n in to_stop if n not in carrying]
        with self._lock:
            to_stop = [n for n in to_stop if n not in self.retiring]  # on their way already
        replaced = {name for name in to_stop if any(s.name == name for s in to_start)}
        if wait:  # a change waits only for instances replaced under the same name
            self._retire(app, [n for n in to_stop if n not in replaced])
            self._drain_and_stop([n for n in to_stop if n in replaced])
        else:
            self._drain_and_stop(to_stop)
        if to_start:
            self._start(to_start, app, wait, probes)
        return len(to_stop) + len(to_start)

    def _crash_due(self, inst: Instance) -> bool:
        """Record a crash once, and say whether its backoff has passed."""
        self._mark_ready(inst.name, False)
        now = self.clock()
        crash = self.crashes.get(inst.name)
        if crash is None or crash.next_try is None:
            in_a_row = crash is not None and now - crash.started < STABLE_AFTER
            count = crash.count + 1 if crash is not None and in_a_row else 1
            delay = min(2.0 ** (count - 1), MAX_BACKOFF)
            self.crashes[inst.name] = Crash(count, now + delay)
            self.log_store.record(inst.app_id, f"{inst.process}.{inst.index} exited with code "
                             f"{inst.exit_code}; restarting in {delay:.0f}s")
            return False
        return now >= crash.next_try

    def _start(self, specs: list[InstanceSpec], app: AppState, wait: bool,
               probes: list[Probe]) -> None:
        for spec in specs:
            crash = self.crashes.get(spec.name)
            if crash is not None:
                crash.next_try, crash.started = None, self.clock()
        self._reclaim([s.name for s in specs])
        if wait:
            self._start_healthy(specs, app)
            return
        for spec in specs:
            try:
                inst = self._start_one(spec)
            except Exception as err:  # keep reconciling the other instances
                log.warning("could not start %s: %s", spec.name, err)
                continue
            probes.append((inst, app))

    def _start_one(self, spec: InstanceSpec) -> Instance:
        self._moved()
        return self.runtime.start(spec)

    def _moved(self) -> None:
        """An instance is about to start or stop: listings made before are stale."""
        with self._lock:
            self._moves += 1

    def _start_healthy(self, specs: list[InstanceSpec], app: AppState) -> list[Instance]:
        """Start every spec; web instances must pass the health check within the app's
        timeout. On any failure every instance started here is stopped again, so nothing
        half-deployed stays behind."""
        started: list[Instance] = []
        self._reclaim([s.name for s in specs])
        try:
            # All at once: each start is a few engine commands that mostly wait.
            with ThreadPoolExecutor(max_workers=8) as pool:
                starts = [pool.submit(self._start_one, spec) for spec in specs]
            started += [f.result() for f in starts if f.exception() is None]
            failed = next((f.exception() for f in starts if f.exception() is not None), None)
            if failed is not None:
                raise failed
            crash_point("local.started")
            with ThreadPoolExecutor(max_workers=8) as pool:
                checks = {f"{inst.process}.{inst.index}":
                          pool.submit(self._check, inst, app, app.health_timeout)
                          for inst in started}
                failures = {name: f.result() for name, f in checks.items() if f.result()}
            if failures:
                name, reason = next(iter(failures.items()))
                raise DeployFailed(
                    f"instance {name} never became healthy: {reason}. The previous release "
                    f"keeps serving; check `cove logs {app.app}`, the app must answer HTTP on "
                    f"$PORT at {app.health_path}")
        except BaseException:
            self._stop_all([i.name for i in started])
            raise
        for inst in started:
            self._mark_ready(inst.name)
        return started

    def _check(self, inst: Instance, app: AppState, timeout: float) -> str | None:
        """None once the instance may take traffic (workers take none), else why not."""
        if inst.process != WEB:
            return None
        if inst.address is None:
            return self.runtime.exited(inst.name) or "it has no network address"
        return self.health.wait_healthy(inst.address, app.health_path, timeout,
                                        gone=lambda: self.runtime.exited(inst.name))

    def _run_probes(self, probes: list[Probe]) -> None:
        """Short health probes of instances Cove did not just roll out, all at once: a pass
        (and the apps' locks it holds) must not wait a second per instance."""
        def probe(inst: Instance, app: AppState) -> None:
            if self._check(inst, app, PROBE_TIMEOUT) is None:
                self._mark_ready(inst.name)

        if probes:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda p: probe(*p), probes))

    def _mark_ready(self, name: str, ready: bool = True) -> None:
        with self._lock:
            if ready:
                self.ready.add(name)
            else:
                self.ready.discard(name)

    def _drain_and_stop(self, names: list[str]) -> None:
        """Take instances out of the router before stopping them, so no request fails."""
        if not names:
            return
        with self._lock:
            serving = [n for n in names if n in self.ready]
            self.ready.difference_update(names)
        if serving:
            self.sync_routes()
            time.sleep(self.drain_seconds)
        self._stop_all(names)

    def _retire(self, app: AppState, names: list[str], routed: bool = False) -> None:
        """Take instances out of the route now, and drain and stop them in the background:
        a change is done once what should serve does (`cove ps` shows these stopping)."""
        if not names:
            return
        with self._lock:
            serving = any(n in self.ready for n in names)
            self.ready.difference_update(names)
            self.retiring.update(names)
        if serving and not routed:
            self.sync_routes()
        self._later(lambda: self._finish_retiring(app, names))

    def _finish_retiring(self, app: AppState, names: list[str]) -> None:
        time.sleep(self.drain_seconds)  # let requests in flight finish
        with self._lock:  # a retirement called off meanwhile (wanted again) stops nothing
            names = [n for n in names if n in self.retiring]
            self.retiring.difference_update(names)
            self.stopping.update(names)
        try:
            self._stop_all(names)
            with self._lock:
                known = self.apps.get(app.key)
            if names and known is not None and known.app_id == app.app_id:
                self.log_store.record(app.app_id, f"{len(names)} replaced instance(s) "
                                      "drained and stopped")
        except Exception:
            # What could not be stopped is no release's: the next reconcile pass removes it.
            log.exception("stopping retired instances %s failed", names)
        finally:
            with self._stopped:
                self.stopping.difference_update(names)
                self._stopped.notify_all()
        if names:
            self.sync_routes()  # nothing stopped may stay named in a route

    def _reclaim(self, names: list[str]) -> None:
        """Before instances start under these names: a retirement not yet stopping is
        called off, and a stop under way is waited out (it would take the new one)."""
        with self._stopped:
            self.retiring.difference_update(names)
            self._stopped.wait_for(lambda: not self.stopping.intersection(names),
                                   timeout=self.grace_seconds + 30)

    def _stop_all(self, names: list[str]) -> None:
        with self._lock:
            self.ready.difference_update(names)
        if not names:
            return
        self._moved()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda n: self.runtime.stop(n, self.grace_seconds), names))

    # -- routing ----------------------------------------------------------------------------

    def routes(self, running: list[Instance] | None = None) -> list[Route]:
        """One route per app: its hostnames to its ready web instances of its release
        (of those `running`, listed now if not given)."""
        with self._lock:
            apps = list(self.apps.values())
            ready = set(self.ready)
        by_app: dict[int, list[tuple[int, str]]] = {}
        for inst in self.runtime.instances() if running is None else running:
            if inst.process == WEB and inst.name in ready and inst.address \
                    and inst.state == "running":
                by_app.setdefault(inst.app_id, []).append((inst.release, inst.address))
        routes: list[Route] = []
        claimed: set[str] = set()
        for app in sorted(apps, key=lambda a: a.app_id):
            # A hostname routes to one app only, the one that had it first (services refuse
            # clashes; this keeps a clash that slipped through from taking traffic).
            hosts = tuple(h for h in app.hostnames if h not in claimed)
            claimed.update(hosts)
            routes.append(Route(app.app_id, hosts, _serving(app, by_app.get(app.app_id, []))))
        return routes

    def sync_routes(self, running: list[Instance] | None = None) -> bool:
        """Point the router at what should serve now; True if anything changed. Computing
        and applying happen under one lock, so a stale computation never wins."""
        with self._routes_lock:
            return self.router.apply(self.routes(running))
