"""`cove-server doctor` on this machine and on one missing a binary; `cove doctor` on a real
app of the local pool (the Kubernetes pool's is in test_kubernetes_pool)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cove.preflight.requirements import SERVER_SCOPES, tools
from tests.support.cove import CliUser, CoveServer
from tests.support.services import Registry, free_port

# The checks Cove itself controls: an app made with Cove's defaults passes every one.
COVE_CONTROLS = ("image pinned by digest", "non-root", "read-only root filesystem",
                 "no privileges", "requests and limits", "image running is the release's",
                 "health check", "network isolation", "admission", "quota")


def server_doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cove.server", "doctor", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def machine_without(tmp_path: Path, hidden: str) -> str:
    """A PATH with every command of this machine's PATH but `hidden`."""
    shadow = tmp_path / "bin"
    shadow.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = shadow / entry.name
            if entry.name != hidden and not target.exists() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    return str(shadow)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, COVE_HOME=str(tmp_path / "home"), COVE_API_PORT=str(free_port()),
                COVE_ROUTER_PORT=str(free_port()))


def test_server_doctor_is_green_on_a_prepared_machine(env: dict[str, str]) -> None:
    proc = server_doctor(env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert not [line for line in lines if line.startswith("FAIL")]
    for tool in tools(SERVER_SCOPES):
        assert any(line.startswith("pass") and f" {tool.name} — " in line for line in lines), \
            tool.name
    for check in ("podman network backend", "cgroups", "seccomp", "iptables", "ip6tables",
                  "API port", "router port", "state directory", "disk for images", "database"):
        assert any(f" {check} — " in line for line in lines), (check, proc.stdout)


def test_a_missing_binary_is_named_with_its_fix_and_blocks_the_server(
        env: dict[str, str], tmp_path: Path) -> None:
    env["PATH"] = machine_without(tmp_path, "skopeo")
    proc = server_doctor(env, "--only", "install")
    assert proc.returncode == 1
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1, proc.stdout
    assert " skopeo — not found" in failed[0] and "apt-get install skopeo" in failed[0]

    server = subprocess.run([sys.executable, "-m", "cove.server"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert server.returncode == 1
    assert "skopeo" in server.stderr and "not starting" in server.stderr
    assert not (Path(env["COVE_HOME"]) / "cove.db").exists()  # it stopped before anything


def test_a_busy_port_blocks_the_server(env: dict[str, str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", int(env["COVE_API_PORT"])))
        busy.listen()
        server = subprocess.run([sys.executable, "-m", "cove.server"], env=env,
                                capture_output=True, text=True, timeout=120)
    assert server.returncode == 1
    assert f"{env['COVE_API_PORT']} is in use" in server.stderr


def report(user: CliUser, *args: str) -> dict[str, dict[str, str]]:
    """`cove doctor --json` by check name (it exits 0: nothing fails)."""
    proc = user.run("doctor", *args, "--json")
    return {c["name"]: c for c in json.loads(proc.stdout)["checks"]}


def test_doctor_on_a_real_app(cove: CoveServer, registry: Registry) -> None:
    dora = cove.tenant("dora", "shop")
    dora.run("deploy", "shop", f"{registry.host}/examples/hello:1")
    checks = report(dora, "shop")
    for name in COVE_CONTROLS:
        assert checks[name]["status"] == "pass", checks[name]
    assert "uid 10001" in checks["non-root"]["detail"]
    assert checks["more than one web instance"]["status"] == "warn"
    assert "cove scale shop web=2" in checks["more than one web instance"]["fix"]
    assert checks["backups of Cove's state"]["status"] == "warn"  # honest: none yet

    dora.run("scale", "shop", "web=2")
    dora.run("config", "set", "shop", "UPSTREAM=postgres://app:hunter2@db.internal/shop",
             "DATABASE_URL=postgres://app:pw@db/shop", "GREETING=hi")
    checks = report(dora, "shop")
    assert checks["more than one web instance"]["status"] == "pass"
    assert "2 instances of web run as uid 10001" in checks["non-root"]["detail"]
    secrets = checks["secrets under plain names"]
    assert secrets["status"] == "warn" and "UPSTREAM" in secrets["detail"]
    assert "DATABASE_URL" not in secrets["detail"] and "hunter2" not in json.dumps(checks)
    assert checks["release command"]["status"] == "warn"  # a database, no migrations step

    text = dora.run("doctor", "shop").stdout
    assert "warn  secrets under plain names" in text and "fix: name secrets" in text

    # Another tenant learns nothing; a viewer sees the checks but not config's.
    eve = cove.tenant("eve-doctor")
    assert "no space named" in eve.run("doctor", "shop", "--space", "dora", ok=False).stderr
    vic = cove.tenant("vic-doctor")
    dora.run("members", "add", "dora", "vic-doctor", "--role", "viewer")
    seen = report(vic, "shop", "--space", "dora")
    assert seen["non-root"]["status"] == "pass" and "secrets under plain names" not in seen


def test_doctor_on_a_space_and_an_app_not_deployed(cove: CoveServer) -> None:
    nell = cove.tenant("nell", "empty")
    space = report(nell)
    assert space["network isolation"]["status"] in ("pass", "warn")
    assert space["room in the quota"]["status"] == "pass"
    app = report(nell, "empty")
    assert app["deployed"]["status"] == "warn" and "cove deploy empty" in app["deployed"]["fix"]


def test_doctor_fails_when_isolation_is_broken(cove: CoveServer, registry: Registry) -> None:
    """Remove the host firewall's jump for a space's bridge behind Cove's back: the
    isolation check fails and says how to repair it (the reconciler does not re-add it)."""
    olga = cove.tenant("olga", "site")
    olga.run("deploy", "site", f"{registry.host}/examples/hello:1")
    install = (cove.home / "install-id").read_text().strip()
    network = f"cove-{install}-olga"
    iface = subprocess.run(["podman", "network", "inspect", "--format",
                            "{{.NetworkInterface}}", network], capture_output=True, text=True,
                           env=dict(os.environ, CONTAINERS_CONF=str(cove.home / "engine" /
                                                                    "containers.conf")),
                           check=True, timeout=60).stdout.strip()
    jump = ["INPUT", "-i", iface, "-j", f"COVE-{install}-HOST"]
    subprocess.run(["iptables", "-w", "-D", *jump], check=True, timeout=60)
    try:
        proc = olga.run("doctor", "site", "--json", ok=False)
        checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
        assert checks["network isolation"]["status"] == "fail"
        assert "host firewall guard" in checks["network isolation"]["detail"]
    finally:
        subprocess.run(["iptables", "-w", "-I", *jump], check=True, timeout=60)
    assert report(olga, "site")["network isolation"]["status"] == "pass"
