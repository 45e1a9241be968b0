from __future__ import annotations

from cove.domain.models import App
from cove.ports.pool import AppState
from cove.ports.runtime import Instance, InstanceSpec
from cove.services import apps, releases
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
