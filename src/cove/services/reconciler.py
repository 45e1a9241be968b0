"""Make the runtime and the router match the desired state in the store.

Runs in a loop beside the API. After a broker restart it adopts the instances
that are still running (their names encode the release), restarts crashed ones
with exponential backoff, and removes whatever no app wants any more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cove.domain.models import App, Release, Space
from cove.ports.pool import AppState
from cove.ports.router import Route
from cove.ports.runtime import Instance, InstanceSpec
from cove.services.context import Context
from cove.services.pools import current_state, pool_of
from cove.services.rollout import WEB, mark_ready, specs_for, start_healthy, stop_all
from cove.services.spaces import template_of

log = logging.getLogger(__name__)
MAX_BACKOFF = 60.0
PROBE_TIMEOUT = 1.0


STABLE_AFTER = 60.0  # an instance up this long starts its next backoff from the beginning


@dataclass
class Crash:
    count: int  # crashes in a row
    next_try: float | None  # when the pending restart is due; None once restarted
    started: float = 0.0  # when it was last restarted


@dataclass
class Desired:
    app: App
    space: Space
    release: Release | None


class Reconciler:
    def __init__(self, ctx: Context, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.clock = clock
        self.crashes: dict[str, Crash] = {}
        self._next_pool_pass = 0.0
        self._stop = threading.Event()

    # -- one app -------------------------------------------------------------------------

    def converge_app(self, app_id: int, *, wait: bool = False) -> None:
        """Bring one app's instances in line with its current release and formation."""
        with self.ctx.locks.hold(app_id):
            desired = self._desired(app_id)
            if desired is not None and pool_of(self.ctx, desired.space) is not None:
                return  # a declarative pool runs it: see reconcile_pools()
            running = self.ctx.runtime.instances(app_id)
            if desired is None or desired.release is None:
                stop_all(self.ctx, [i.name for i in running])
                return
            app, space, release = desired.app, desired.space, desired.release
            specs = specs_for(self.ctx, space.name, template_of(space), app, release,
                              app.formation)
            wanted = {s.name: s for s in specs}
            by_name = {i.name: i for i in running}
            to_stop = [n for n in by_name if n not in wanted]
            to_start = []
            for name, spec in wanted.items():
                inst = by_name.get(name)
                if inst is None:
                    to_start.append(spec)
                elif inst.fingerprint != spec.fingerprint:
                    to_stop.append(name)  # e.g. a new size: replace it
                    to_start.append(spec)
                elif inst.state != "running":
                    if self._crash_due(inst):
                        to_stop.append(name)
                        to_start.append(spec)
                elif name not in self.ctx.ready:
                    self._probe(inst, app)
            self._drain_and_stop(to_stop)
            if to_start:
                self._start(to_start, app, wait)

    def _drain_and_stop(self, names: list[str]) -> None:
        """Take instances out of the router before stopping them, so no request fails."""
        if not names:
            return
        with self.ctx.ready_lock:
            serving = [n for n in names if n in self.ctx.ready]
            self.ctx.ready.difference_update(names)
        if serving:
            self.sync_routes()
            time.sleep(self.ctx.settings.drain_seconds)
        stop_all(self.ctx, names)

    def _desired(self, app_id: int) -> Desired | None:
        with self.ctx.store.unit_of_work() as uow:
            app = uow.apps.by_id(app_id)
            if app is None:
                return None
            space = uow.spaces.get(app.space_id)
            assert space is not None
            release = (uow.releases.get(app.id, app.release_version)
                       if app.release_version else None)
            return Desired(app, space, release)

    def _crash_due(self, inst: Instance) -> bool:
        """Record a crash once, and say whether its backoff has passed."""
        mark_ready(self.ctx, inst.name, False)
        now = self.clock()
        crash = self.crashes.get(inst.name)
        if crash is None or crash.next_try is None:
            in_a_row = crash is not None and now - crash.started < STABLE_AFTER
            count = crash.count + 1 if crash is not None and in_a_row else 1
            delay = min(2.0 ** (count - 1), MAX_BACKOFF)
            self.crashes[inst.name] = Crash(count, now + delay)
            self.ctx.logs.record(inst.app_id, f"{inst.process}.{inst.index} exited with code "
                                 f"{inst.exit_code}; restarting in {delay:.0f}s")
            return False
        return now >= crash.next_try

    def _start(self, specs: list[InstanceSpec], app: App, wait: bool) -> None:
        for spec in specs:
            crash = self.crashes.get(spec.name)
            if crash is not None:
                crash.next_try, crash.started = None, self.clock()
        if wait:
            start_healthy(self.ctx, specs, app)
            return
        for spec in specs:
            try:
                inst = self.ctx.runtime.start(spec)
            except Exception as err:  # keep reconciling the other apps
                log.warning("could not start %s: %s", spec.name, err)
                continue
            self._probe(inst, app)

    def _probe(self, inst: Instance, app: App) -> None:
        if inst.process != WEB:
            mark_ready(self.ctx, inst.name)
            return
        if inst.address and self.ctx.health.wait_healthy(
                inst.address, app.health_path, PROBE_TIMEOUT) is None:
            mark_ready(self.ctx, inst.name)

    # -- everything ------------------------------------------------------------------------

    def tick(self) -> None:
        with self.ctx.store.unit_of_work() as uow:
            spaces = {s.id: s for s in uow.spaces.all()}
            apps = uow.apps.all()
        app_ids = [a.id for a in apps if pool_of(self.ctx, spaces[a.space_id]) is None]
        for app_id in app_ids:
            try:
                self.converge_app(app_id)
            except Exception:
                log.exception("reconciling app %s failed", app_id)
        if self.clock() >= self._next_pool_pass:
            self._next_pool_pass = self.clock() + self.ctx.settings.pool_reconcile_interval
            self.reconcile_pools()
        # Instances first, then the apps: an app created during this tick (and started
        # since) is in the store by then, so its instances are not taken for orphans.
        running = self.ctx.runtime.instances()
        with self.ctx.store.unit_of_work() as uow:
            known = {a.id for a in uow.apps.all()}
        orphans = [i.name for i in running if i.app_id not in known]
        if orphans:
            log.info("removing %d orphaned instances", len(orphans))
            stop_all(self.ctx, orphans)
        self.sync_routes()

    def reconcile_pools(self) -> None:
        """Re-apply every pool app's desired state: repairs drift, writes nothing otherwise.

        Apps being deployed right now are skipped: their lock is held, and the store still
        describes the release that is being replaced.
        """
        held: list[int] = []
        by_pool: dict[str, list[AppState]] = {}
        try:
            with self.ctx.store.unit_of_work() as uow:
                for space in uow.spaces.all():
                    pool = pool_of(self.ctx, space)
                    if pool is None:
                        continue
                    for app in uow.apps.of_space(space.id):
                        if not self.ctx.locks.try_acquire(app.id):
                            continue
                        held.append(app.id)
                        state = current_state(self.ctx, uow, space, app)
                        if state is not None:
                            by_pool.setdefault(pool.name, []).append(state)
            for name, states in by_pool.items():
                try:
                    self.ctx.pools[name].reconcile(states)
                except Exception:
                    log.exception("reconciling pool %s failed", name)
        finally:
            for app_id in held:
                self.ctx.locks.release(app_id)

    def sync_routes(self) -> bool:
        return sync_routes(self.ctx)

    def run(self, interval: float = 2.0) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("reconcile tick failed")
            self._stop.wait(interval)

    def stop(self) -> None:
        self._stop.set()


def sync_routes(ctx: Context) -> bool:
    """Point the router at what should serve now; True if anything changed."""
    with ctx.routes_lock:
        return ctx.router.apply(routes(ctx))


def routes(ctx: Context) -> list[Route]:
    """One route per app: its hostnames to its ready web instances of the current release."""
    by_app: dict[int, list[tuple[int, str]]] = {}
    with ctx.ready_lock:
        ready = set(ctx.ready)
    with ctx.store.unit_of_work() as uow:
        local = {s.id: s.name for s in uow.spaces.all() if pool_of(ctx, s) is None}
        apps = [a for a in uow.apps.all() if a.space_id in local]  # pools route their own
        spaces = local
        domains = {a.id: [d.hostname for d in uow.domains.of_app(a.id)] for a in apps}
    for inst in ctx.runtime.instances():
        if inst.process == WEB and inst.name in ready and inst.address and inst.state == "running":
            by_app.setdefault(inst.app_id, []).append((inst.release, inst.address))
    result = []
    for app in apps:
        backends = tuple(sorted(addr for rel, addr in by_app.get(app.id, [])
                                if rel == app.release_version))
        hosts = (ctx.app_hostname(app.name, spaces[app.space_id]), *domains[app.id])
        result.append(Route(app.id, hosts, backends))
    return result
