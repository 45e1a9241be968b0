from __future__ import annotations

import pytest

from cove.domain.errors import DeployFailed, Forbidden, ImageError, Invalid, NotFound, QuotaExceeded
from cove.domain.roles import Role
from cove.ports.router import Gone
from cove.services import apps, releases, spaces
from tests.unit.conftest import DIGEST, DIGEST2, IMAGE, IMAGE2, World


def deployed(world: World, replicas: int = 1) -> None:
    alice = world.user("alice")
    apps.create_app(world.ctx, alice, "alice", "hello")
    releases.deploy_image(world.ctx, alice, "alice", "hello", IMAGE)
    if replicas != 1:
        releases.scale(world.ctx, alice, "alice", "hello",
                       {"web": (replicas, None)})


def alice(world: World):  # type: ignore[no-untyped-def]
    from cove.services.accounts import authenticate, login

    return authenticate(world.ctx, login(world.ctx, "alice", "password123"))


def backends(world: World) -> tuple[str, ...]:
    return world.router.backends(1)


def test_deploy_runs_the_image_by_digest_and_routes_to_it(world: World) -> None:
    deployed(world)
    view = apps.show_app(world.ctx, alice(world), "alice", "hello")
    assert view.release is not None and view.release.version == 1
    assert view.release.image_digest == DIGEST
    [inst] = world.runtime.instances()
    assert inst.release == 1 and inst.process == "web"
    assert backends(world) == (inst.address,)
    assert view.url == "http://hello-alice.localhost:8080/"


def test_config_change_is_a_new_release_and_replaces_instances(world: World) -> None:
    deployed(world, replicas=2)
    release = releases.set_config(world.ctx, alice(world), "alice", "hello", {"GREETING": "hi"})
    assert release is not None and release.version == 2 and release.config == {"GREETING": "hi"}
    running = world.runtime.instances()
    assert {i.release for i in running} == {2} and len(running) == 2
    assert all("GREETING" in i.labels["env"] for i in running)
    assert set(backends(world)) == {i.address for i in running}
    releases.set_config(world.ctx, alice(world), "alice", "hello", {"GREETING": None})
    assert releases.get_config(world.ctx, alice(world), "alice", "hello") == {}


def test_config_before_the_first_deploy_waits_for_it(world: World) -> None:
    a = world.user("alice")
    apps.create_app(world.ctx, a, "alice", "hello")
    assert releases.set_config(world.ctx, a, "alice", "hello", {"A": "1"}) is None
    release = releases.deploy_image(world.ctx, a, "alice", "hello", IMAGE)
    assert release.config == {"A": "1"}


def test_rollback_creates_a_new_release_with_the_old_image_and_config(world: World) -> None:
    deployed(world)
    a = alice(world)
    releases.set_config(world.ctx, a, "alice", "hello", {"GREETING": "hi"})
    releases.deploy_image(world.ctx, a, "alice", "hello", IMAGE2)
    back = releases.rollback(world.ctx, a, "alice", "hello", 1)
    assert (back.version, back.image_digest, back.config) == (4, DIGEST, {})
    assert [r.version for r in releases.list_releases(world.ctx, a, "alice", "hello")] == [
        4, 3, 2, 1]
    assert releases.rollback(world.ctx, a, "alice", "hello").image_digest == DIGEST2
    with pytest.raises(NotFound, match="v9"):
        releases.rollback(world.ctx, a, "alice", "hello", 9)


def test_failed_health_check_keeps_the_old_release_and_leaves_nothing(world: World) -> None:
    deployed(world)
    a = alice(world)
    before = list(world.runtime.instances())
    world.health.unhealthy = {f"10.0.0.{n}:8000" for n in range(world.runtime.next_ip + 1, 99)}
    with pytest.raises(DeployFailed, match="never became healthy"):
        releases.set_config(world.ctx, a, "alice", "hello", {"BROKEN": "1"})
    assert world.runtime.instances() == before
    assert [r.version for r in releases.list_releases(world.ctx, a, "alice", "hello")] == [1]
    assert releases.get_config(world.ctx, a, "alice", "hello") == {}
    assert backends(world) == (before[0].address,)


def test_an_instance_that_exits_while_starting_is_reported_with_its_exit_code(
        world: World) -> None:
    deployed(world)
    before = list(world.runtime.instances())
    world.runtime.exit_on_start = 4
    with pytest.raises(DeployFailed, match=r"web\.1 never became healthy: it exited with code 4"):
        releases.set_config(world.ctx, alice(world), "alice", "hello", {"BROKEN": "1"})
    assert world.runtime.instances() == before


def test_unknown_images_create_nothing(world: World) -> None:
    a = world.user("alice")
    apps.create_app(world.ctx, a, "alice", "hello")
    with pytest.raises(ImageError):
        releases.deploy_image(world.ctx, a, "alice", "hello", "registry.test/nope:1")
    for bad in ("", "has space", "x" * 600):
        with pytest.raises(Invalid):
            releases.deploy_image(world.ctx, a, "alice", "hello", bad)
    assert world.runtime.started == []
    assert releases.list_releases(world.ctx, a, "alice", "hello") == []


def test_over_quota_is_refused_before_anything_starts(world: World) -> None:
    deployed(world)
    a = alice(world)
    started = list(world.runtime.started)
    with pytest.raises(QuotaExceeded, match="instances"):
        releases.scale(world.ctx, a, "alice", "hello", {"web": (21, None)})
    with pytest.raises(QuotaExceeded, match="memory"):
        releases.scale(world.ctx, a, "alice", "hello", {"web": (10, "large")})
    assert world.runtime.started == started
    assert apps.show_app(world.ctx, a, "alice", "hello").app.formation["web"].count == 1


def test_scaling_unknown_types_or_before_deploy_is_invalid(world: World) -> None:
    a = world.user("alice")
    apps.create_app(world.ctx, a, "alice", "hello")
    with pytest.raises(Invalid, match="deploy it before scaling"):
        releases.scale(world.ctx, a, "alice", "hello", {"web": (2, None)})
    releases.deploy_image(world.ctx, a, "alice", "hello", IMAGE)
    with pytest.raises(Invalid, match="no process type 'worker'"):
        releases.scale(world.ctx, a, "alice", "hello", {"worker": (1, None)})


def test_scale_up_and_down_routes_only_live_instances(world: World) -> None:
    deployed(world, replicas=3)
    assert len(backends(world)) == 3
    releases.scale(world.ctx, alice(world), "alice", "hello", {"web": (1, None)})
    [inst] = world.runtime.instances()
    assert backends(world) == (inst.address,)


def test_resizing_replaces_instances(world: World) -> None:
    deployed(world)
    [old] = world.runtime.instances()
    releases.scale(world.ctx, alice(world), "alice", "hello",
                   {"web": (None, "standard")})
    [new] = world.runtime.instances()
    assert new.fingerprint != old.fingerprint and old.name in world.runtime.stopped


def test_viewers_cannot_deploy_or_read_config(world: World) -> None:
    deployed(world)
    bob = world.user("bob")
    spaces.set_member(world.ctx, alice(world), "alice", "bob", Role.VIEWER)
    apps.show_app(world.ctx, bob, "alice", "hello")  # viewers may look
    for call in (lambda: releases.deploy_image(world.ctx, bob, "alice", "hello", IMAGE2),
                 lambda: releases.set_config(world.ctx, bob, "alice", "hello", {"A": "b"}),
                 lambda: releases.get_config(world.ctx, bob, "alice", "hello"),
                 lambda: releases.rollback(world.ctx, bob, "alice", "hello", 1),
                 lambda: apps.destroy_app(world.ctx, bob, "alice", "hello")):
        with pytest.raises(Forbidden):
            call()


def test_destroy_removes_instances_routes_and_logs(world: World) -> None:
    deployed(world, replicas=2)
    apps.destroy_app(world.ctx, alice(world), "alice", "hello")
    assert world.runtime.instances() == []
    assert world.router.routes == []
    assert 1 not in world.logs.lines


def test_custom_domains_are_unique_and_not_under_the_base_domain(world: World) -> None:
    deployed(world)
    a = alice(world)
    apps.add_domain(world.ctx, a, "alice", "hello", "WWW.Example.Test")
    assert "www.example.test" in world.router.routes[0].hostnames
    bob = world.user("bob")
    apps.create_app(world.ctx, bob, "bob", "evil")
    from cove.domain.errors import Conflict

    with pytest.raises(Conflict):
        apps.add_domain(world.ctx, bob, "bob", "evil", "www.example.test")
    with pytest.raises(Invalid, match="Cove's own domain"):
        apps.add_domain(world.ctx, bob, "bob", "evil", "hello-alice.localhost")
    with pytest.raises(NotFound):
        apps.remove_domain(world.ctx, bob, "bob", "evil", "www.example.test")


def test_a_failing_release_command_fails_the_deploy(world: World) -> None:
    from cove.services.releases import deploy_built_image

    deployed(world)
    a = alice(world)
    processes = {"web": None, "release": ["/bin/sh", "-c", "./migrate"]}
    world.runtime.once_exit_code = 1
    before = list(world.runtime.instances())
    with pytest.raises(DeployFailed, match="release command failed"):
        deploy_built_image(world.ctx, a, "alice", "hello", "build 1", DIGEST2, processes, "b")
    assert world.runtime.instances() == before
    world.runtime.once_exit_code = 0
    release = deploy_built_image(world.ctx, a, "alice", "hello", "build 2", DIGEST2, processes,
                                 "b")
    assert release.version == 2 and any(n.endswith("release_1_v2") for n in
                                        world.runtime.started)
    view = apps.show_app(world.ctx, a, "alice", "hello").as_dict()
    assert view["process_types"] == ["web"] and view["release_command"] == "./migrate"
    with pytest.raises(Invalid, match="no process type 'release'"):
        releases.scale(world.ctx, a, "alice", "hello", {"release": (1, None)})


def test_a_release_that_cannot_be_recorded_rolls_back_without_a_gap(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool rolled v2 out, then the store refused to record it: v1 comes back healthy
    before v2 leaves the route, so the app never stops answering."""
    from cove.adapters.store.sql.repositories import SqlReleases

    deployed(world)
    before = len(world.router.history)

    def refuse(self: SqlReleases, release: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(SqlReleases, "add", refuse)
    with pytest.raises(RuntimeError, match="disk full"):
        releases.deploy_image(world.ctx, alice(world), "alice", "hello", IMAGE2)
    assert [i.release for i in world.runtime.instances()] == [1]
    assert backends(world) == (world.runtime.instances()[0].address,)
    served = [next(r.backends for r in routes if r.app_id == 1)
              for routes in world.router.history[before:]]
    assert served and all(served), served  # never a moment without a backend


def test_a_domain_added_during_a_deploy_waits_for_it(world: World) -> None:
    """Routing a new hostname must not converge the app to the release being replaced."""
    import threading

    deployed(world)
    gate, checking = threading.Event(), threading.Event()
    health = world.health.wait_healthy

    def slow(address: str, path: str, timeout: float, gone: Gone | None = None) -> str | None:
        checking.set()
        gate.wait(5)
        return health(address, path, timeout, gone)

    world.health.wait_healthy = slow  # type: ignore[method-assign]
    deploy = threading.Thread(target=releases.deploy_image,
                              args=(world.ctx, alice(world), "alice", "hello", IMAGE2))
    deploy.start()
    assert checking.wait(5)  # v2 is being health-checked
    adding = threading.Thread(target=apps.add_domain,
                              args=(world.ctx, alice(world), "alice", "hello", "www.example.test"))
    adding.start()
    adding.join(0.3)
    gate.set()
    deploy.join(10)
    adding.join(10)
    [inst] = world.runtime.instances()
    assert inst.release == 2 and backends(world) == (inst.address,)
    [route] = world.router.routes
    assert "www.example.test" in route.hostnames


def test_builds_left_running_by_a_stopped_server_end_recorded_as_failed(world: World) -> None:
    """A build that was running when the broker died stayed "running" forever."""
    from cove.domain.builds import FAILED, RUNNING
    from cove.services import builds

    deployed(world)
    with world.ctx.store.unit_of_work() as uow:
        space = uow.spaces.by_name("alice")
        assert space is not None
        app = uow.apps.get(space.id, "hello")
        assert app is not None
        uow.builds.add(app.id, "alice", RUNNING)
        uow.commit()
    assert builds.fail_interrupted(world.ctx) == 1
    [build] = builds.list_builds(world.ctx, alice(world), "alice", "hello")
    assert build.status == FAILED and "interrupted" in build.error
    assert build.finished_at is not None
    assert builds.fail_interrupted(world.ctx) == 0


def test_a_build_whose_release_was_recorded_before_the_server_stopped_succeeded(
        world: World) -> None:
    """The server died after the build's release was recorded (it serves) but before the
    build was: the build was then recorded failed, "nothing of it was released"."""
    from cove.domain.builds import RUNNING, SUCCEEDED
    from cove.services import builds

    deployed(world)
    with world.ctx.store.unit_of_work() as uow:
        space = uow.spaces.by_name("alice")
        assert space is not None
        app = uow.apps.get(space.id, "hello")
        assert app is not None
        build = uow.builds.add(app.id, "alice", RUNNING)
        uow.commit()
    released = releases.deploy_built_image(
        world.ctx, alice(world), "alice", "hello", builds.release_label(build.number), IMAGE2,
        {"web": None}, f"Build {build.number}")
    assert builds.fail_interrupted(world.ctx) == 0
    [after] = builds.list_builds(world.ctx, alice(world), "alice", "hello")
    assert after.status == SUCCEEDED and after.release_version == released.version, after
    assert after.finished_at is not None and not after.error


def test_a_change_applied_is_reported_applied_even_if_its_aftermath_fails(
        world: World) -> None:
    """`config set` answered 500 although the release was recorded and served: once the
    new release serves and is recorded, failing to stop the old instances or to write an
    event does not make the change an error. The next pass removes what was left."""
    deployed(world)
    a = alice(world)
    world.runtime.fail_stop = True
    world.logs.fail_on = "is live"
    release = releases.set_config(world.ctx, a, "alice", "hello", {"GREETING": "hi"})
    assert release.version == 2
    assert [r.version for r in releases.list_releases(world.ctx, a, "alice", "hello")] == [2, 1]
    assert {i.release for i in world.runtime.instances()} == {1, 2}  # v1 not stopped yet
    world.runtime.fail_stop = False
    world.reconciler.tick()
    assert {i.release for i in world.runtime.instances()} == {2}
