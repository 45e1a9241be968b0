"""Faults on a real Cove while clients hammer an app through its router.

The broker is killed (SIGKILL) at each step of a deploy, a config change, a scale and a
rollback; the router and an app instance are killed. With two instances no request may
fail; after each restart the record, the instances, the route and the containers agree,
and nothing is left behind. The figures of the same faults: bench/chaos.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.adapters.builder.stacks import Stack
from cove.crashpoints import STEPS
from tests.support.apps import dockerfile_app
from tests.support.chaos import (
    Target,
    crash_during,
    failures,
    info,
    kill_instance,
    kill_router,
    load,
    podman,
    wait_converged,
)
from tests.support.cove import make_server
from tests.support.services import Registry, wait_until

# Every step of each change that makes a release; the steps a scale passes.
CRASHES = [(change, step) for change in ("deploy", "config", "rollback") for step in STEPS] + [
    ("scale-up", "local.started"), ("scale-up", "local.routed"),
    ("scale-down", "local.routed")]


@pytest.fixture(scope="module")
def target(workdir: Path, registry: Registry) -> Iterator[Target]:
    cove = make_server(workdir / "chaos")
    cove.start()
    try:
        user = cove.tenant("kit", "chaos")
        image = f"{registry.host}/examples/hello:1"
        user.run("deploy", "chaos", image)
        user.run("scale", "chaos", "web=2")
        yield Target(cove, user, "chaos", image)
    finally:
        cove.teardown()


def test_killing_the_broker_at_any_step_of_a_change_fails_no_request(target: Target) -> None:
    crash_through(target, CRASHES)


def crash_through(target: Target, crashes: list[tuple[str, str]]) -> None:
    """Each change of `crashes`, the broker killed at its step, under load: the record is
    true after each restart and no request failed."""
    results = []
    with load(target) as stats:
        for n, (change, step) in enumerate(crashes):
            before = info(target)
            result = crash_during(target, change, step, n)
            after = info(target)
            results.append(result)
            # The record is true: a change is there if and only if it was recorded.
            if change.startswith("scale"):
                assert after["formation"]["web"]["count"] == (3 if change == "scale-up" else 2)
            else:
                number = int(before["release"][1:]) + (step == "release.recorded")
                assert after["release"] == f"v{number}", (change, step)
            assert "not answering" in result["cli_said"], result
    ok, failed, why = failures(stats)
    assert ok > 0 and failed == 0, (why[:20], results)


def test_the_router_recovers_from_any_death(target: Target) -> None:
    with load(target) as stats:
        for how in ("master-kill", "workers-kill", "master-term"):
            kill_router(target, how)
    wait_converged(target)
    ok, _, _ = failures(stats)
    assert ok > 0  # (requests fail while no router runs at all: see bench/chaos.py)


def test_a_killed_instance_fails_no_request_while_another_serves(target: Target) -> None:
    with load(target) as stats:
        kill_instance(target, 1)
    ok, failed, why = failures(stats)
    assert ok > 0 and failed == 0, why[:20]


def test_a_redeploy_under_concurrent_load_fails_no_request(target: Target) -> None:
    with load(target, clients=8) as stats:
        target.user.run("config", "set", "chaos", "LOADED=1")
        wait_converged(target)
    ok, failed, why = failures(stats)
    assert ok > 0 and failed == 0, why[:20]


def test_a_lone_instance_killed_is_back_within_the_backoff(target: Target) -> None:
    """With one instance, requests fail until it is restarted: the first restart waits 1 s,
    then the start and health check; 20 s bounds it on a loaded machine."""
    target.user.run("scale", "chaos", "web=1")
    wait_converged(target)
    result = kill_instance(target, 1)
    assert result["recovered_s"] < 20, result


def test_a_lone_instance_serves_through_the_brokers_death_at_any_step(target: Target) -> None:
    """With one instance the bound is the same as with two, none failed: the old instance
    serves until the new one is healthy and routed, whichever step the broker died at."""
    target.user.run("scale", "chaos", "web=1")
    wait_converged(target)
    crash_through(target, [(change, step) for change in ("config", "deploy")
                           for step in STEPS])


def test_a_build_cut_off_by_the_brokers_death_leaves_nothing_running(
        target: Target, busybox_ref: str, tmp_path: Path, stack: Stack) -> None:
    """The build's work directory (a copy of its context, and the image it made, up to the
    build's disk limit) stayed behind for good, and its sandbox until its own client
    stopped it. (`stack`: the sandbox's image is made first, minutes on a new machine.)"""
    cove, user = target.cove, target.user
    user.run("apps", "create", "slow")
    source = dockerfile_app(tmp_path / "slow", "slow")
    (source / "Dockerfile").write_text(f"FROM {busybox_ref}\nRUN sleep 600\n")
    builds = cove.home / "engine" / "builds"
    push = subprocess.Popen([sys.executable, "-m", "cove.cli.main", "push", "slow",
                             str(source)], env=user.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        wait_until(lambda: [n for n in podman(target, "ps", "--format", "{{.Names}}").split()
                            if n.startswith("cove-build-")], 120, "the build's sandbox")
        [work] = builds.glob("cove-build-*")
        cove.kill()
    finally:
        push.kill()
        push.wait()
    cove.start()
    assert work.name not in podman(target, "ps", "-a", "--format", "{{.Names}}").split()
    assert not list(builds.glob("cove-build-*"))
    [build] = json.loads(user.run("builds", "slow", "--json").stdout)
    assert build["status"] == "failed" and "interrupted" in build["error"], build
