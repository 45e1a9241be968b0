"""The podman runtime against the real engine: hardening, isolation, logs."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from cove.adapters.runtime.local.podman import PodmanRuntime
from cove.adapters.runtime.local.spec import container_name
from cove.ports.runtime import Instance
from tests.integration.conftest import spec
from tests.support.services import wait_until


def inspect(runtime: PodmanRuntime, name: str) -> dict:  # type: ignore[type-arg]
    out = runtime.engine.run("container", "inspect", "--format", "json",
                             container_name(runtime.install, name)).stdout
    return json.loads(out)[0]  # type: ignore[no-any-return]


def exec_in(runtime: PodmanRuntime, name: str, *cmd: str) -> str:
    proc = runtime.engine.run("exec", container_name(runtime.install, name), *cmd, check=False)
    return proc.stdout + proc.stderr


def test_an_instance_serves_http_on_port_with_the_restricted_profile(
        runtime: PodmanRuntime, hello_image: str) -> None:
    inst = runtime.start(spec(hello_image, env={"GREETING": "howdy"}))
    assert inst.state == "running" and inst.address
    wait_until(lambda: httpx.get(f"http://{inst.address}/").status_code == 200, 10, "http")
    assert httpx.get(f"http://{inst.address}/").text.startswith("howdy")
    data = inspect(runtime, inst.name)
    host = data["HostConfig"]
    assert data["Config"]["User"] == "10001:10001"
    assert host["ReadonlyRootfs"] is True
    assert "no-new-privileges" in " ".join(host["SecurityOpt"])
    assert host["CapAdd"] in (None, []) and data["EffectiveCaps"] in (None, [])
    assert host["Memory"] == 64 * 1024 * 1024 and host["PidsLimit"] == 64
    assert host["NanoCpus"] == 250_000_000
    assert host["Init"] is True
    assert host["Privileged"] is False and host["NetworkMode"].startswith("bridge")
    assert data["Config"]["Labels"]["app.kubernetes.io/managed-by"] == "cove"
    status = exec_in(runtime, inst.name, "/hello", "fetch", "http://127.0.0.1:8000/healthz")
    assert status.startswith("200")


def test_process_status_shows_no_root_no_caps_and_seccomp(runtime: PodmanRuntime,
                                                          hello_image: str) -> None:
    inst = runtime.start(spec(hello_image))
    pid = inspect(runtime, inst.name)["State"]["Pid"]
    # PID 1 is the init; its child is the app. Read the app's status from the host.
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    status = Path(f"/proc/{children[0] if children else pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split()[0] == "10001"
    assert int(fields["CapEff"].strip(), 16) == 0 and int(fields["CapBnd"].strip(), 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"  # filter mode


def test_spaces_cannot_reach_each_other_but_a_space_reaches_itself(
        runtime: PodmanRuntime, hello_image: str) -> None:
    target = runtime.start(spec(hello_image, space="alice"))
    neighbour = runtime.start(spec(hello_image, space="alice", app="other"))
    stranger = runtime.start(spec(hello_image, space="mallory", app="probe"))
    url = f"http://{target.address}/"
    wait_until(lambda: httpx.get(url).status_code == 200, 10, "target")
    assert exec_in(runtime, neighbour.name, "/hello", "fetch", url).startswith("200")
    assert "error" in exec_in(runtime, stranger.name, "/hello", "fetch", url)


def test_instances_reach_dns_but_not_the_hosts_own_services(runtime: PodmanRuntime,
                                                             hello_image: str) -> None:
    host_service = ThreadingHTTPServer(("0.0.0.0", 0), SimpleHTTPRequestHandler)
    threading.Thread(target=host_service.serve_forever, daemon=True).start()
    try:
        target = runtime.start(spec(hello_image, space="alice"))
        probe = runtime.start(spec(hello_image, space="alice", app="probe"))
        wait_until(lambda: httpx.get(f"http://{target.address}/").status_code == 200, 10, "up")
        network = json.loads(runtime.engine.run(
            "network", "inspect", f"cove-{runtime.install}-alice").stdout)[0]
        gateway = network["subnets"][0]["gateway"]
        port = host_service.server_address[1]
        assert "error" in exec_in(runtime, probe.name, "/hello", "fetch",
                                  f"http://{gateway}:{port}/")
        # the space's DNS still answers: instances find each other by name
        by_name = f"http://{container_name(runtime.install, target.name)}:8000/"
        assert exec_in(runtime, probe.name, "/hello", "fetch", by_name).startswith("200")
    finally:
        host_service.shutdown()


def test_only_builds_reach_the_port_opened_to_them(runtime: PodmanRuntime,
                                                  hello_image: str) -> None:
    """The builds' dependency cache listens on the builds' bridge: a build reaches it, an
    app instance does not (at that address or its own bridge's)."""
    host_service = ThreadingHTTPServer(("0.0.0.0", 0), SimpleHTTPRequestHandler)
    threading.Thread(target=host_service.serve_forever, daemon=True).start()
    try:
        port = host_service.server_address[1]
        address = runtime.build_gateway()
        runtime.open_to_builds(port)
        probe = runtime.start(spec(hello_image, space="alice", app="probe"))
        wait_until(lambda: httpx.get(f"http://{probe.address}/").status_code == 200, 10, "up")
        network = json.loads(runtime.engine.run(
            "network", "inspect", f"cove-{runtime.install}-alice").stdout)[0]
        for host in (address, network["subnets"][0]["gateway"]):
            assert "error" in exec_in(runtime, probe.name, "/hello", "fetch",
                                      f"http://{host}:{port}/")
        build = runtime.engine.run(
            "run", "--rm", "--network", runtime.build_network(), "--entrypoint", "/hello",
            hello_image, "fetch", f"http://{address}:{port}/", check=False)
        assert build.stdout.startswith("200"), build.stdout + build.stderr
    finally:
        host_service.shutdown()


def test_stop_sends_sigterm_and_logs_outlive_the_container(runtime: PodmanRuntime,
                                                           hello_image: str) -> None:
    inst = runtime.start(spec(hello_image))
    wait_until(lambda: httpx.get(f"http://{inst.address}/ping").status_code == 200, 10, "http")
    runtime.stop(inst.name, 5)
    assert runtime.instances() == []
    text = [line.text for line in runtime.logs.read_instances(inst.app_id, 100)]
    assert any("GET /ping" in t for t in text)
    assert any("SIGTERM received" in t for t in text)


def test_a_crash_is_reported_with_its_exit_code(runtime: PodmanRuntime,
                                                hello_image: str) -> None:
    inst = runtime.start(spec(hello_image, env={"ALLOW_CRASH": "1"}))
    wait_until(lambda: httpx.get(f"http://{inst.address}/").status_code == 200, 10, "http")
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(f"http://{inst.address}/crash", timeout=2)
    wait_until(lambda: runtime.instances()[0].state == "exited", 10, "exit")
    assert runtime.instances()[0].exit_code == 3


def test_the_listing_says_what_inspecting_each_instance_says(runtime: PodmanRuntime,
                                                             hello_image: str) -> None:
    """Instances are listed from one `ps`, with addresses remembered from an earlier
    inspect: running, crashed and restarted (a new address may come with it) alike."""
    runtime.start(spec(hello_image, index=1))
    crashing = runtime.start(spec(hello_image, index=2, env={"ALLOW_CRASH": "1"}))
    runtime.instances()  # remembers both addresses
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(f"http://{crashing.address}/crash", timeout=2)
    restarted = runtime.start(spec(hello_image, index=3))
    runtime.engine.run("restart", container_name(runtime.install, restarted.name))
    wait_until(lambda: {i.name: i.state for i in runtime.instances()}[crashing.name]
               == "exited", 10, "the crash")

    def fields(inst: Instance) -> tuple[object, ...]:
        return (inst.name, inst.state, inst.address, inst.exit_code, inst.release,
                inst.process, inst.index, inst.app_id, inst.fingerprint,
                inst.started_at and int(inst.started_at.timestamp()))

    listed = sorted(fields(i) for i in runtime.instances())
    ids = runtime.engine.run("ps", "--all", "--quiet", "--no-trunc", "--filter",
                             f"label=cove.install={runtime.install}").stdout.split()
    assert listed == sorted(fields(i) for i in runtime._inspect(ids))
    assert [i[2] for i in listed if i[0] == crashing.name] == [None]
    assert all(i[2] for i in listed if i[0] != crashing.name)


def test_memory_limit_is_enforced(runtime: PodmanRuntime, hello_image: str) -> None:
    inst = runtime.start(spec(hello_image, memory_mb=16))
    pid = inspect(runtime, inst.name)["State"]["Pid"]
    cgroup = Path(f"/proc/{pid}/cgroup").read_text()
    memory_path = next(line.split(":", 2)[2] for line in cgroup.splitlines()
                       if ":memory:" in line)
    limit = int(Path(f"/sys/fs/cgroup/memory{memory_path}/memory.limit_in_bytes").read_text())
    assert limit == 16 * 1024 * 1024


def test_unknown_image_fails_cleanly(runtime: PodmanRuntime) -> None:
    from cove.domain.errors import DeployFailed

    try:
        runtime.start(spec("localhost/cove-test/does-not-exist:1"))
    except DeployFailed as err:
        assert "could not start" in err.message
    else:
        raise AssertionError("starting a missing image should fail")
    assert runtime.instances() == []


def test_many_instances_of_the_shared_uid_start_side_by_side(runtime: PodmanRuntime,
                                                             hello_image: str) -> None:
    # All instances run as the same uid; a per-uid process limit would let one tenant's
    # instances starve everyone else's. The pids cgroup limits each instance instead.
    started = [runtime.start(spec(hello_image, app=f"app{n}", pids=32)) for n in range(6)]
    for inst in started:
        wait_until(lambda i=inst: httpx.get(f"http://{i.address}/").status_code == 200,  # type: ignore[misc]
                   10, inst.name)
    assert {i.state for i in runtime.instances()} == {"running"}


def test_the_pids_limit_stops_a_fork_bomb_inside_one_instance(runtime: PodmanRuntime,
                                                              hello_image: str) -> None:
    inst = runtime.start(spec(hello_image, pids=16))
    data = inspect(runtime, inst.name)
    lines = Path(f"/proc/{data['State']['Pid']}/cgroup").read_text().splitlines()
    path = next(line.split(":", 2)[2] for line in lines if ":pids:" in line)
    assert Path(f"/sys/fs/cgroup/pids{path}/pids.max").read_text().strip() == "16"


class _HTTPServer6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _link_local(interface: str) -> str | None:
    """The host's IPv6 link-local address on an interface (from /proc/net/if_inet6)."""
    for line in Path("/proc/net/if_inet6").read_text().splitlines():
        address, _, _, scope, _, name = line.split()
        if name == interface and scope == "20":  # 0x20: link scope
            return ":".join(address[i:i + 4] for i in range(0, 32, 4))
    return None


def _answers(address: str, interface: str, port: int) -> bool:
    family, kind, proto, _, where = socket.getaddrinfo(f"{address}%{interface}", port,
                                                       socket.AF_INET6, socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as conn:
        conn.settimeout(5)
        conn.connect(where)
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return conn.recv(12).startswith(b"HTTP/1.0 200")


def test_instances_do_not_reach_the_host_over_ipv6_either(runtime: PodmanRuntime,
                                                          hello_image: str) -> None:
    """The bridge has an IPv6 link-local address: a host service listening there must be
    out of reach like on the IPv4 gateway (ip6tables guards it)."""
    host_service = _HTTPServer6(("::", 0), SimpleHTTPRequestHandler)
    threading.Thread(target=host_service.serve_forever, daemon=True).start()
    try:
        probe = runtime.start(spec(hello_image, space="alice", app="probe6"))
        wait_until(lambda: httpx.get(f"http://{probe.address}/").status_code == 200, 10, "up")
        bridge = runtime.engine.run("network", "inspect", "--format", "{{.NetworkInterface}}",
                                    f"cove-{runtime.install}-alice").stdout.strip()
        wait_until(lambda: _link_local(bridge) is not None, 10, "the bridge's IPv6 address")
        address = _link_local(bridge)
        port = host_service.server_address[1]
        # the control: the host itself reaches the service on that address (once the
        # address has passed duplicate detection: it is tentative for a moment)
        wait_until(lambda: _answers(address, bridge, port), 15, "the host over IPv6")
        answer = exec_in(runtime, probe.name, "/hello", "fetch",
                         f"http://[{address}%25eth0]:{port}/")
        assert "error" in answer, answer
    finally:
        host_service.shutdown()
