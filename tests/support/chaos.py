"""Faults made on a real Cove while a client hammers an app: the broker killed at a chosen
step of a change (`COVE_CRASH_AT`), its router killed, an instance killed. Shared by the
chaos tests (which assert) and bench/chaos.py (which reports the figures)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cove.adapters.router.nginx.process import running_pid
from tests.support.cove import CliUser, CoveServer, requesting

# What a change runs, by name: the CLI's arguments for APP (`n` makes each unique).
CHANGES = {
    "deploy": lambda app, image, n: ("deploy", app, image),
    "config": lambda app, image, n: ("config", "set", app, f"ROUND={n}"),
    "scale-up": lambda app, image, n: ("scale", app, "web=3"),
    "scale-down": lambda app, image, n: ("scale", app, "web=2"),
    "rollback": lambda app, image, n: ("rollback", app),
}


@dataclass
class Target:
    cove: CoveServer
    user: CliUser
    app: str
    image: str

    @property
    def host(self) -> str:
        return f"{self.app}-{self.user.name}.localhost"

    def get(self) -> httpx.Response:
        return self.cove.app_get(self.host)


@contextmanager
def load(target: Target, clients: int = 2) -> Iterator[list[dict[str, Any]]]:
    """`clients` loops requesting the app through the router while the block runs."""
    with ExitStack() as stack:
        yield [stack.enter_context(requesting(target.get)) for _ in range(clients)]


def failures(stats: list[dict[str, Any]]) -> tuple[int, int, list[str]]:
    """(ok, failed, why) summed over the clients of `load`."""
    return (sum(s["ok"] for s in stats), sum(s["failed"] for s in stats),
            [e for s in stats for e in s["errors"]])


def info(target: Target) -> dict[str, Any]:
    """The app as the API shows it: its recorded release, formation and instances."""
    with target.user.api() as api:
        response = api.get(f"/v1/spaces/{target.user.name}/apps/{target.app}")
    response.raise_for_status()
    return dict(response.json())


def podman(target: Target, *args: str) -> str:
    env = dict(os.environ, CONTAINERS_CONF=str(target.cove.home / "engine" / "containers.conf"))
    return subprocess.run(["podman", *args], env=env, capture_output=True, text=True,
                          check=True, timeout=60).stdout


def containers(target: Target) -> list[str]:
    """Every container of the app on this machine, running or not (orphans included)."""
    install = (target.cove.home / "install-id").read_text().strip()
    names = podman(target, "ps", "-a", "--format", "{{.Names}}").split()
    return [n for n in names if n.startswith(f"cove-{install}-{target.user.name}_{target.app}_")]


def converged(target: Target) -> str | None:
    """None once record, instances, route and containers agree; else what does not."""
    app = info(target)
    version, web, instances = app["release"], app["formation"]["web"]["count"], \
        app["instances"]
    wrong = [i for i in instances if i["state"] != "up" or i["release"] != version]
    if wrong or len(instances) != web:
        return f"instances {[(i['name'], i['state'], i['release']) for i in instances]}, " \
               f"want {web} up of {version}"
    found = containers(target)
    if len(found) != web or any(not n.endswith(f"_{version}") for n in found):
        return f"containers {found}, want {web} of {version}"
    answers = {target.get().text.split("release=")[1].split()[0] for _ in range(2 * web)}
    if answers != {version}:
        return f"the route answers {sorted(answers)}, want {version}"
    return None


def wait_converged(target: Target, within: float = 60) -> float:
    """Seconds until `converged`; fails with what still differs after `within`."""
    began = time.monotonic()
    why: str | None = "not checked"
    while time.monotonic() - began < within:
        try:
            why = converged(target)
        except (httpx.HTTPError, IndexError, KeyError) as err:
            why = f"{type(err).__name__}: {err}"
        if why is None:
            return time.monotonic() - began
        time.sleep(0.2)
    raise AssertionError(f"{target.app} did not converge within {within:.0f}s: {why}")


def crash_during(target: Target, change: str, step: str, n: int) -> dict[str, Any]:
    """Start the server set to die at `step`, make the change, restart it, and time how long
    until everything converges."""
    cove = target.cove
    cove.kill()  # (at rest: nothing is in flight)
    cove.env["COVE_CRASH_AT"] = step
    try:
        cove.start()
    finally:
        del cove.env["COVE_CRASH_AT"]
    answer = target.user.run(*CHANGES[change](target.app, target.image, n), ok=False,
                             timeout=180)
    assert cove.proc is not None
    try:
        cove.proc.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{change} never reached {step}: {answer.stdout}") from None
    cove.proc = None
    died = time.monotonic()
    cove.start()
    restarted = time.monotonic() - died
    return {"change": change, "step": step, "cli_said": answer.stderr.strip(),
            "restart_s": round(restarted, 3),
            "converged_s": round(restarted + wait_converged(target), 3)}


def kill_router(target: Target, how: str) -> dict[str, Any]:
    """Kill Cove's nginx (`master-kill`: SIGKILL of the master, its workers left behind;
    `master-term`; `workers-kill`: every worker) and time until the app answers again
    from a master Cove started or kept."""
    prefix = target.cove.home / "router"
    master = running_pid(prefix)
    assert master is not None, "no router running"
    workers = [int(p) for p in (
        Path(f"/proc/{master}/task/{master}/children").read_text().split())]
    began = time.monotonic()
    if how == "master-kill":
        os.kill(master, signal.SIGKILL)
    elif how == "master-term":
        os.kill(master, signal.SIGTERM)
    else:
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
    deadline = began + 30
    while time.monotonic() < deadline:
        now = running_pid(prefix)
        if (now is not None and (how == "workers-kill" or now != master)) and \
                _answers(target):
            return {"fault": f"router {how}", "recovered_s": round(time.monotonic() - began, 3)}
        time.sleep(0.05)
    raise AssertionError(f"the router did not recover within 30s of {how}")


def kill_instance(target: Target, index: int = 1) -> dict[str, Any]:
    """SIGKILL one web instance's container and time until the app has its full formation
    again (restarted by the reconciler)."""
    version = info(target)["release"]
    install = (target.cove.home / "install-id").read_text().strip()
    name = f"cove-{install}-{target.user.name}_{target.app}_web_{index}_{version}"
    began = time.monotonic()
    podman(target, "kill", "--signal", "KILL", name)
    return {"fault": "instance kill", "recovered_s": round(
        time.monotonic() - began + wait_converged(target), 3)}


def _answers(target: Target) -> bool:
    try:
        return target.get().status_code == 200
    except httpx.HTTPError:
        return False

