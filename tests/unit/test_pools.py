from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from cove.domain.errors import Conflict, DeployFailed, Forbidden, Invalid, Unsupported
from cove.domain.events import FAILED, SUCCEEDED, Output, Result
from cove.domain.roles import Role
from cove.ports.builder import BuildLimits, BuiltImage
from cove.ports.registry import Destination
from cove.services import apps, builds, releases, spaces, stacks
from tests.support.fakes import FakeAutoscalingPool, FakePool, FakeResolver
from tests.unit.conftest import IMAGE, IMAGE2, World


@pytest.fixture
def pool(world: World) -> FakePool:
    fake = FakeAutoscalingPool("k8s")
    world.ctx.pools["k8s"] = fake
    return fake


def test_only_the_platform_admin_places_spaces_on_a_pool(world: World, pool: FakePool) -> None:
    alice, root = world.user("alice"), world.user("operator", admin=True)
    with pytest.raises(Forbidden):
        spaces.create_space(world.ctx, alice, "mine", pool="k8s")
    with pytest.raises(Invalid, match="unknown pool"):
        spaces.create_space(world.ctx, root, "elsewhere", pool="mars")
    spaces.create_space(world.ctx, root, "team", pool="k8s")
    spaces.set_member(world.ctx, root, "team", "alice", Role.DEVELOPER)
    assert dict(pool.spaces["team"].members)["alice"] is Role.DEVELOPER  # type: ignore[attr-defined]
    assert "team" not in world.runtime.spaces  # nothing local for a pool space


def test_releases_on_a_pool_are_rolled_out_by_it(world: World, pool: FakePool) -> None:
    alice, root = world.user("alice"), world.user("operator", admin=True)
    spaces.create_space(world.ctx, root, "team", pool="k8s")
    spaces.set_member(world.ctx, root, "team", "alice", Role.DEVELOPER)
    apps.create_app(world.ctx, alice, "team", "web")
    releases.deploy_image(world.ctx, alice, "team", "web", IMAGE)
    state = pool.apps[("team", "web")]
    assert state.release == 1 and state.hostnames == ("web-team.localhost",)  # type: ignore[attr-defined]
    assert world.runtime.started == []
    releases.scale(world.ctx, alice, "team", "web", {"web": (3, None)})
    assert pool.apps[("team", "web")].processes[0].count == 3  # type: ignore[attr-defined]
    view = apps.show_app(world.ctx, alice, "team", "web").as_dict()
    assert [i["state"] for i in view["instances"]] == ["up"] * 3

    pool.fail_deploy = True
    with pytest.raises(DeployFailed):
        releases.deploy_image(world.ctx, alice, "team", "web", IMAGE2)
    new, previous = pool.deploys[-1]
    assert previous.release == 1 and new.release == 2  # type: ignore[attr-defined]
    assert [r.version for r in releases.list_releases(world.ctx, alice, "team", "web")] == [1]
    pool.fail_deploy = False
    apps.destroy_app(world.ctx, alice, "team", "web")
    assert ("team", "web") not in pool.apps
    spaces.destroy_space(world.ctx, root, "team")
    assert "team" not in pool.spaces


def test_autoscaling_is_an_optional_capability_of_pools(world: World, pool: FakePool) -> None:
    from cove.domain.errors import Unsupported
    from cove.domain.models import Autoscale

    alice, root = world.user("alice"), world.user("operator", admin=True)
    apps.create_app(world.ctx, alice, "alice", "local-app")
    releases.deploy_image(world.ctx, alice, "alice", "local-app", IMAGE)
    with pytest.raises(Unsupported, match="'local' pool"):
        releases.autoscale(world.ctx, alice, "alice", "local-app", "web",
                           Autoscale(1, 3))
    spaces.create_space(world.ctx, root, "team", pool="k8s")
    apps.create_app(world.ctx, root, "team", "web")
    releases.deploy_image(world.ctx, root, "team", "web", IMAGE)
    # a pool without the capability says so too
    world.ctx.pools["k8s"] = FakePool("k8s", spaces=pool.spaces, apps=pool.apps)
    with pytest.raises(Unsupported, match="'k8s' pool"):
        releases.autoscale(world.ctx, root, "team", "web", "web",
                           Autoscale(1, 3))
    world.ctx.pools["k8s"] = pool
    formation = releases.autoscale(world.ctx, root, "team", "web", "web",
                                   Autoscale(2, 5, 60))
    assert formation["web"].autoscale == Autoscale(2, 5, 60) and formation["web"].count == 2
    assert pool.apps[("team", "web")].processes[0].autoscale == Autoscale(2, 5, 60)  # type: ignore[attr-defined]
    with pytest.raises(Invalid, match="autoscaled between 2 and 5"):
        releases.scale(world.ctx, root, "team", "web", {"web": (3, None)})
    # the quota must hold the maximum: 21 instances never fit into 20
    from cove.domain.errors import QuotaExceeded

    with pytest.raises(QuotaExceeded):
        releases.autoscale(world.ctx, root, "team", "web", "web",
                           Autoscale(1, 21))
    releases.autoscale(world.ctx, root, "team", "web", "web", None)
    releases.scale(world.ctx, root, "team", "web", {"web": (3, None)})


class OneImageBuilder:
    """Builds every source into the same local image (the real builder is tested apart)."""

    def unpack(self, archive: BinaryIO, dest: Path) -> int:
        (dest / "Dockerfile").write_text(archive.read().decode())
        return 1

    def build(self, source: Path, tag: str, limits: BuildLimits,
              emit: Callable[[str], None], scope: str = "") -> BuiltImage:
        return BuiltImage("0123abcd", "dockerfile")

    def remove_interrupted(self) -> int:
        return 0


def test_builds_for_a_pool_go_through_its_registry(world: World, pool: FakePool) -> None:
    alice, root = world.user("alice"), world.user("operator", admin=True)
    world.ctx.builder = OneImageBuilder()
    spaces.create_space(world.ctx, root, "team", pool="k8s")
    spaces.set_member(world.ctx, root, "team", "alice", Role.DEVELOPER)
    apps.create_app(world.ctx, alice, "team", "web")
    with pytest.raises(Unsupported, match="no registry for images built from source"):
        builds.push_source(world.ctx, alice, "team", "web", io.BytesIO(b"FROM scratch"))
    assert builds.list_builds(world.ctx, alice, "team", "web") == []  # nothing half-made

    pool.registry = Destination(push="127.0.0.1:5000/cove", pull="registry.internal/cove")
    out = list(builds.push_source(world.ctx, alice, "team", "web",
                                  io.BytesIO(b"FROM scratch")))
    assert out[-2:] == [Output("==> build 1 succeeded: released v1"),
                        Result(SUCCEEDED, "build 1 succeeded: released v1", 1, 1)]
    resolver = world.ctx.resolver
    assert isinstance(resolver, FakeResolver)
    assert resolver.published == [("0123abcd", "127.0.0.1:5000/cove/team/web:build-1")]
    image = pool.apps[("team", "web")].image  # type: ignore[attr-defined]
    assert image.startswith("registry.internal/cove/team/web@sha256:")


class SlowStackBuilder(OneImageBuilder):
    def __init__(self) -> None:
        self.release = threading.Event()

    def build_stacks(self, emit: Callable[[str], None]) -> None:
        emit("-----> debootstrap")
        self.release.wait(10)
        raise RuntimeError("debootstrap failed: mirror unreachable")


def test_one_stack_build_at_a_time_by_platform_admins(world: World) -> None:
    alice, root = world.user("alice"), world.user("operator", admin=True)
    builder = SlowStackBuilder()
    world.ctx.builder = builder
    with pytest.raises(Forbidden):
        stacks.build_stacks(world.ctx, alice)
    first = stacks.build_stacks(world.ctx, root)
    assert next(first) == Output("-----> debootstrap")
    with pytest.raises(Conflict, match="already running"):
        stacks.build_stacks(world.ctx, root)
    builder.release.set()
    message = "stack build failed: debootstrap failed: mirror unreachable"
    assert list(first) == [Output(f"==> {message}"), Result(FAILED, message)]
    second = stacks.build_stacks(world.ctx, root)  # the failure freed the lock
    builder.release.set()
    assert list(second)[-1] == Result(FAILED, message)


def test_a_release_command_on_a_pool_that_cannot_run_one_is_refused(world: World,
                                                                       pool: FakePool) -> None:
    """Skipping it silently would release code before its migrations ran."""
    root = world.user("operator", admin=True)
    spaces.create_space(world.ctx, root, "team", pool="k8s")
    apps.create_app(world.ctx, root, "team", "web")
    with pytest.raises(Unsupported, match="release command is not supported on the 'k8s'"):
        releases.deploy_built_image(world.ctx, root, "team", "web", "build 1", IMAGE,
                                    {"web": None, "release": ["migrate"]}, "Build 1")
    assert releases.list_releases(world.ctx, root, "team", "web") == []
    assert pool.deploys == []  # nothing was rolled out


def test_build_slots_follow_a_changed_quota() -> None:
    """A build waiting for a slot goes as soon as the quota grows, without a restart."""
    from cove.services.builds import BuildSlots

    slots, limit = BuildSlots(), [1]
    slots.RECHECK = 0.05
    assert slots.try_acquire(7, limit[0])
    assert not slots.try_acquire(7, limit[0])
    went = threading.Event()

    def wait_for_a_slot() -> None:
        slots.acquire(7, lambda: limit[0])
        went.set()

    threading.Thread(target=wait_for_a_slot, daemon=True).start()
    assert not went.wait(0.3)  # still one build at a time
    limit[0] = 2
    assert went.wait(5)
    slots.release(7)
    slots.release(7)
    assert slots.try_acquire(7, 1)  # both slots came back
