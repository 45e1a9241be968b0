"""Make every pool match the desired state in the store.

Runs in a loop beside the API. Each pass hands each pool the state of all its apps
(`Pool.reconcile`): the local pool adopts the instances still running after a broker
restart, restarts crashed ones with backoff and removes what no app wants; a Kubernetes
pool re-applies what drifted in its spaces and apps. Apps being deployed right now are
left to their deploy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

from cove.ports.pool import AppState, SpaceState
from cove.services.context import Context, space_lock
from cove.services.pools import current_state, pool_of, space_state

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, ctx: Context, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.clock = clock
        self._next: dict[str, float] = {}  # pool -> when its next pass is due
        self._stop = threading.Event()

    def tick(self) -> None:
        for name, pool in self.ctx.pools.items():
            if self.clock() < self._next.get(name, 0.0):
                continue
            self._next[name] = self.clock() + pool.reconcile_interval
            try:
                self.reconcile_pool(name)
            except Exception:
                log.exception("reconciling pool %s failed", name)

    def reconcile_pool(self, name: str) -> int:
        """Hand the pool every app it runs. Apps being deployed right now are skipped:
        their lock is held, and the store still describes the release being replaced.
        So are spaces being changed (a member added): what was read of them would be
        applied over the change."""
        pool = self.ctx.pools[name]
        held: list[Hashable] = []
        states: list[AppState] = []
        spaces: list[SpaceState] = []
        try:
            # Locks first, then a fresh read: a change committed before its lock was taken
            # is seen, and none can commit until the pass has applied what it read.
            with self.ctx.store.unit_of_work() as uow:
                ours = [s for s in uow.spaces.all() if pool_of(self.ctx, s) is pool]
                keys = [k for s in ours for k in (space_lock(s.id),
                                                   *(a.id for a in uow.apps.of_space(s.id)))]
            held += [k for k in keys if self.ctx.locks.try_acquire(k)]
            taken = set(held)
            with self.ctx.store.unit_of_work() as uow:
                for space in uow.spaces.all():
                    if pool_of(self.ctx, space) is not pool:
                        continue
                    if space_lock(space.id) in taken:
                        spaces.append(space_state(uow, space))
                    for app in uow.apps.of_space(space.id):
                        state = current_state(self.ctx, uow, space, app) \
                            if app.id in taken else None
                        if state is not None:
                            states.append(state)
            return pool.reconcile(states, spaces)
        finally:
            for key in held:
                self.ctx.locks.release(key)

    def run(self, interval: float = 2.0) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("reconcile tick failed")
            self._stop.wait(interval)

    def stop(self) -> None:
        self._stop.set()
