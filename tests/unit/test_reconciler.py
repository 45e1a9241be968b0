from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from cove.domain.models import App, User
from cove.domain.roles import Role
from cove.ports.pool import AppState, SpaceState
from cove.ports.runtime import Instance, InstanceSpec
from cove.services import apps, releases, spaces
from cove.services.reconciler import Reconciler
from tests.unit.conftest import IMAGE, World


def setup(world: World) -> None:
    a = world.user("alice")
    apps.create_app(world.ctx, a, "alice", "hello")
    releases.deploy_image(world.ctx, a, "alice", "hello", IMAGE)


def test_a_crashed_instance_is_restarted_with_backoff(world: World) -> None:
    setup(world)
    [inst] = world.runtime.instances()
    world.runtime.crash(inst.name)
    world.reconciler.tick()
    assert world.runtime.instances()[0].state == "exited"  # first: wait 1s
    assert world.router.backends(1) == ()
    world.clock[0] += 1.5
    world.reconciler.tick()
    [again] = world.runtime.instances()
    assert again.state == "running" and world.router.backends(1) == (again.address,)
    # crashing again right away waits longer (2s), then 4s...
    world.runtime.crash(again.name)
    world.reconciler.tick()
    world.clock[0] += 1.5
    world.reconciler.tick()
    assert world.runtime.instances()[0].state == "exited"
    world.clock[0] += 1.0
    world.reconciler.tick()
    assert world.runtime.instances()[0].state == "running"
    assert any("exited with code 3" in line for line in world.logs.lines[1])


def test_after_a_restart_running_instances_are_adopted(world: World) -> None:
    setup(world)
    before = list(world.runtime.started)
    world.local.ready.clear()  # a new broker process knows nothing yet
    world.local.apps.clear()
    Reconciler(world.ctx).tick()
    assert world.runtime.started == before  # nothing restarted
    assert len(world.router.backends(1)) == 1


def test_orphans_and_missing_instances_are_fixed(world: World) -> None:
    setup(world)
    spec = InstanceSpec("gone", "old", 99, "web", 1, 1, "img", None, {}, 128, 250, 128, 10001, 64)
    world.runtime.start(spec)
    [ours] = [i for i in world.runtime.instances() if i.app_id == 1]
    world.runtime.stop(ours.name)
    world.reconciler.tick()
    names = {i.name for i in world.runtime.instances()}
    assert spec.name not in names and ours.name in names


def test_an_app_deployed_during_a_tick_is_not_taken_for_an_orphan(world: World) -> None:
    setup(world)
    bob = world.user("bob")
    converge = world.local._converge
    deployed: list[int] = []

    def converge_while_someone_deploys(app: AppState, running: list[Instance], wait: bool,
                                       probes: list[tuple[Instance, AppState]] | None = None,
                                       ) -> int:
        changed = converge(app, running, wait, probes)
        if not deployed:  # a new app's first release lands while the tick runs
            apps.create_app(world.ctx, bob, "bob", "late")
            deployed.append(releases.deploy_image(world.ctx, bob, "bob", "late", IMAGE).app_id)
        return changed

    world.local._converge = converge_while_someone_deploys  # type: ignore[method-assign]
    world.reconciler.tick()
    assert [i.app_id for i in world.runtime.instances() if i.app_id == deployed[0]] == deployed
    assert world.router.backends(deployed[0])  # and it is routed


def test_routes_ignore_instances_of_other_releases(world: World) -> None:
    setup(world)
    app = App(1, 1, "hello", release_version=1)
    spec = InstanceSpec("alice", app.name, 1, "web", 1, 7, "img", None, {}, 128, 250, 128,
                        10001, 64)
    stray = world.runtime.start(spec)
    world.local.ready.add(stray.name)
    world.local.sync_routes()
    assert stray.address not in world.router.backends(1)


def test_a_restart_never_stops_what_still_carries_traffic(world: World) -> None:
    """The broker died right after recording v2, before v2's instances took traffic. Which
    instances passed their health check lived only in memory: the restarted broker
    stopped v1 before v2 was healthy, and the app answered 502 meanwhile. Now the router's
    own configuration says what carries traffic, and v1 goes only once v2 is healthy."""
    from cove.adapters.runtime.local.pool import LocalPool

    setup(world)
    [v1] = world.runtime.instances()
    deploy = world.local.deploy
    world.local.deploy = lambda *args, **kwargs: None  # type: ignore[method-assign]
    releases.set_config(world.ctx, alice_of(world), "alice", "hello",
                        {"GREETING": "v2"})  # recorded; the broker dies here
    world.local.deploy = deploy  # type: ignore[method-assign]
    restarted = LocalPool(world.runtime, world.router, world.health, world.logs,
                          drain_seconds=0, clock=lambda: world.clock[0],
                          later=lambda work: work())
    world.ctx.pools["local"] = restarted
    world.health.unhealthy = {f"10.0.0.{n}:8000" for n in range(world.runtime.next_ip + 1, 99)}
    Reconciler(world.ctx, lambda: world.clock[0]).tick()  # v2 starts, not healthy yet
    assert v1.name in {i.name for i in world.runtime.instances()}
    assert world.router.backends(1) == (v1.address,)  # v1 still answers
    world.health.unhealthy = set()
    Reconciler(world.ctx, lambda: world.clock[0]).tick()
    restarted_v2 = [i for i in world.runtime.instances() if i.release == 2]
    assert restarted_v2 and world.router.backends(1) == (restarted_v2[0].address,)
    Reconciler(world.ctx, lambda: world.clock[0]).tick()
    assert {i.release for i in world.runtime.instances()} == {2}


def alice_of(world: World) -> User:
    with world.ctx.store.unit_of_work() as uow:
        user = uow.users.by_name("alice")
    assert user is not None
    return user


def test_a_pass_never_applies_a_space_older_than_a_member_change(world: World) -> None:
    """A pass read the members (lee an admin), the admin demoted lee meanwhile, and the
    pass then applied its older read: lee's cluster role went back to admin."""
    alice = world.user("alice")
    world.user("lee")
    spaces.set_member(world.ctx, alice, "alice", "lee", Role.ADMIN)
    applied: dict[str, tuple[tuple[str, Role], ...]] = {}
    provision, reconcile = world.local.provision_space, world.local.reconcile

    def provision_space(space: SpaceState) -> int:
        applied[space.name] = space.members
        return provision(space)

    def slow_reconcile(states: list[AppState], spaces_: Sequence[SpaceState] = ()) -> int:
        demotion = threading.Thread(target=spaces.set_member, args=(
            world.ctx, alice, "alice", "lee", Role.VIEWER))
        demotion.start()  # the admin demotes lee while the pass runs
        time.sleep(0.3)
        for space in spaces_:
            applied[space.name] = space.members
        threads.append(demotion)
        return reconcile(states, spaces_)

    threads: list[threading.Thread] = []
    world.local.provision_space = provision_space  # type: ignore[method-assign]
    world.local.reconcile = slow_reconcile  # type: ignore[method-assign]
    world.reconciler.tick()
    threads[0].join(timeout=10)
    assert not threads[0].is_alive(), "the member change never finished"
    assert dict(applied["alice"])["lee"] == Role.VIEWER
