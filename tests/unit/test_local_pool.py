"""The local pool's own rules that services do not see: whose logs it can read, and how
old instances retire after a change."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from cove.adapters.runtime.local.pool import LocalPool
from cove.adapters.runtime.logs import FileLogs
from cove.domain.models import User
from cove.services import apps, releases
from tests.support.fakes import FakeHealth, FakeRouter, FakeRuntime
from tests.support.services import wait_until
from tests.unit.conftest import IMAGE, World


def test_instance_output_is_readable_for_an_app_that_never_ran(tmp_path: Path) -> None:
    """A first deploy that crashed left output but no release: its user must read it."""
    logs = FileLogs(tmp_path)
    path = logs.instance_path(7, "web", 1, 1)
    path.write_text("2026-01-01T00:00:00.000000000Z stderr F Traceback: boom\n")
    logs.record(7, "v1 failed: instance web.1 never became healthy")
    pool = LocalPool(FakeRuntime(), FakeRouter(), FakeHealth(), logs)
    lines = list(pool.logs("alice", "hello", 10, False, app_id=7))
    assert [(line.source, line.text) for line in lines] == [("web.1", "Traceback: boom")]
    # Cove's events stay the events log's; the pool gives only what instances wrote.
    assert [line.text for line in logs.read(7, 10)] == [
        "v1 failed: instance web.1 never became healthy"]


def test_a_change_returns_once_the_new_release_serves_and_the_old_retire_after(
        world: World) -> None:
    """A config change waited for the old instances to drain (1 s) and stop (up to the
    grace) before it answered."""
    world.local.drain_seconds = 0.5
    world.local._later = lambda work: threading.Thread(target=work).start()
    alice = world.user("alice")
    apps.create_app(world.ctx, alice, "alice", "hello")
    releases.deploy_image(world.ctx, alice, "alice", "hello", IMAGE)
    [old] = world.runtime.instances()
    began = time.monotonic()
    releases.set_config(world.ctx, alice, "alice", "hello", {"GREETING": "v2"})
    returned = time.monotonic() - began
    [new] = [i for i in world.runtime.instances() if i.release == 2]
    assert world.router.backends(1) == (new.address,)  # served by v2 when it returns
    states = {i.name: i.labels["retiring"] for i in world.local.instances("alice", "hello")}
    assert states == {old.name: "true", new.name: "false"} and returned < 0.5
    view = apps.show_app(world.ctx, alice, "alice", "hello").as_dict()
    assert sorted(i["state"] for i in view["instances"]) == ["stopping", "up"]
    wait_until(lambda: old.name not in world.runtime.running, 5, "v1 to stop")
    assert not world.local.retiring


def hello_with_retirements_held(world: World) -> tuple[User, list[Callable[[], None]]]:
    """alice's app deployed; the retirements of later changes wait in the list returned
    until the test runs them."""
    held: list[Callable[[], None]] = []
    world.local._later = held.append
    alice = world.user("alice")
    apps.create_app(world.ctx, alice, "alice", "hello")
    releases.deploy_image(world.ctx, alice, "alice", "hello", IMAGE)
    return alice, held


def test_an_instance_started_again_is_not_stopped_by_its_retirement(world: World) -> None:
    """A release put back (its record failed) starts instances under the names that are
    retiring: the retirement must not stop them."""
    alice, held = hello_with_retirements_held(world)
    first = world.local.apps[("alice", "hello")]
    releases.set_config(world.ctx, alice, "alice", "hello", {"GREETING": "v2"})
    second = world.local.apps[("alice", "hello")]
    world.local.deploy(first, second, 10)  # v1 again, as when recording v2 failed
    for work in held:
        work()
    assert {i.release for i in world.runtime.instances()} == {1}
    assert world.router.backends(1) == tuple(i.address for i in world.runtime.instances())


def test_instances_scaled_back_before_their_retirement_keep_serving(world: World) -> None:
    """Scaled down, then up again within the drain: the retiring instances were kept and
    routed, and their retirement then stopped them while they served."""
    alice, held = hello_with_retirements_held(world)
    releases.scale(world.ctx, alice, "alice", "hello", {"web": (3, None)})
    releases.scale(world.ctx, alice, "alice", "hello", {"web": (1, None)})
    releases.scale(world.ctx, alice, "alice", "hello", {"web": (3, None)})
    for work in held:
        work()
    assert len(world.runtime.instances()) == 3
    assert len(world.router.backends(1)) == 3


def test_a_start_waits_out_a_stop_under_the_same_name(world: World) -> None:
    """A rollback started instances under names whose retirement was stopping them: the
    stop took the new instance."""
    alice, held = hello_with_retirements_held(world)
    first = world.local.apps[("alice", "hello")]
    releases.set_config(world.ctx, alice, "alice", "hello", {"GREETING": "v2"})
    second = world.local.apps[("alice", "hello")]
    stop, release = world.runtime.stop, threading.Event()

    def slow_stop(name: str, grace_seconds: int = 10) -> None:
        release.wait(10)  # the stop is under way while the rollback starts
        stop(name, grace_seconds)

    world.runtime.stop = slow_stop  # type: ignore[method-assign]
    retiring = threading.Thread(target=held[0])
    retiring.start()
    wait_until(lambda: world.local.stopping, 5, "the stop to begin")
    rollback = threading.Thread(target=world.local.deploy, args=(first, second, 10))
    rollback.start()
    time.sleep(0.2)
    release.set()
    retiring.join(10)
    rollback.join(10)
    for work in held[1:]:  # v2's own retirement, after the rollback
        work()
    assert {i.release for i in world.runtime.instances()} == {1}
    assert world.router.backends(1) == tuple(i.address for i in world.runtime.instances())


def test_doctor_judges_what_serves_not_instances_being_retired(world: World) -> None:
    """Right after a change the replaced instances drain in the background: `cove doctor`
    counted them (half stopped: no uid, the old image) and failed a healthy app."""
    alice, held = hello_with_retirements_held(world)
    releases.scale(world.ctx, alice, "alice", "hello", {"web": (2, None)})
    releases.set_config(world.ctx, alice, "alice", "hello", {"GREETING": "v2"})
    assert len(world.runtime.instances()) == 4  # two serving, two retiring
    serving = [f"release-{world.local.apps[('alice', 'hello')].release}"] * 2
    assert sorted(p.image for p in world.local.posture("alice", "hello")) == serving
    for work in held:
        work()
    assert sorted(p.image for p in world.local.posture("alice", "hello")) == serving
