"""Router overhead: wrk through Cove's nginx router vs directly to the same instance.

Two honest views on a two-core machine, each in rounds that alternate which side goes
first, after a warm-up round, with medians and min/max of the rounds and the load average:
- `light`: one connection, one request at a time (nothing is CPU-bound): the latency the
  router adds to each request (p50, p99).
- `saturated`: wrk pinned to CPU 0; the server side (the instance, and for the routed
  side also nginx) pinned to CPU 1. Both sides get one core, so the ratio is what routing
  costs in throughput when the router shares the app's core. The example app does almost
  nothing per request: this is the worst case for the ratio.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from tests.support.cove import CoveServer

from bench.common import bench_server, emit, example_in_a_registry, summary

DURATION = os.environ.get("BENCH_DURATION", "5s")
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
HOST = "hello-bench.localhost"


def wrk(url: str, connections: int, host: str | None = None, cpu: str | None = None,
        duration: str = DURATION) -> dict[str, float]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration}", "--latency", url]
    if host:
        args[1:1] = ["-H", f"Host: {host}"]
    if cpu is not None:
        args = ["taskset", "-c", cpu, *args]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests_per_s": rps, "p50_ms": _percentile(out, "50"),
            "p99_ms": _percentile(out, "99"), "non_2xx": int(errors.group(1)) if errors else 0}


def _percentile(out: str, which: str) -> float:
    found = re.search(rf"{which}%\s+([\d.]+)(us|ms|s)", out)
    assert found is not None, out
    return round(float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)], 3)


def pin(pids: list[int], cpu: str) -> None:
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(pid)], check=True,
                       capture_output=True)


def router_pids(cove: CoveServer) -> list[int]:
    master = int((cove.home / "router" / "nginx.pid").read_text())
    return [master, *_children(master)]


def instance_pids(cove: CoveServer, address: str) -> list[int]:
    out = subprocess.run(["podman", "ps", "--format", "{{.ID}}"], capture_output=True,
                         text=True, check=True).stdout.split()
    for cid in out:
        info = subprocess.run(["podman", "inspect", "--format",
                               "{{.State.Pid}} {{range .NetworkSettings.Networks}}"
                               "{{.IPAddress}}{{end}}", cid],
                              capture_output=True, text=True, check=True).stdout.split()
        if len(info) == 2 and address.startswith(info[1] + ":"):
            pid = int(info[0])
            return [pid, *_children(pid)]
    raise LookupError(address)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    found = [int(p) for p in out.split()]
    return found + [g for c in found for g in _children(c)]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cove-bench-"))
    registry, image = example_in_a_registry(work)
    cove = bench_server(work / "cove")
    cove.start()
    load_before = os.getloadavg()[0]
    rounds: dict[str, dict[str, list[dict[str, float]]]] = {
        mode: {"direct": [], "routed": []} for mode in ("light", "saturated")}
    try:
        user = cove.user("bench")
        user.signup()
        user.run("apps", "create", "hello")
        user.run("deploy", "hello", image)
        # the largest size (a whole core), so the app's CPU limit is not what is measured
        user.run("scale", "hello", "web=1:large")
        [inst] = cove_instances(cove)
        direct, routed = f"http://{inst}/", f"{cove.url}/"
        every = list(range(os.cpu_count() or 1))
        for n in range(REPEATS + 1):  # round 0 warms up
            sides = [("direct", direct, None), ("routed", routed, HOST)]
            for name, url, host in sides if n % 2 else reversed(sides):
                pin(instance_pids(cove, inst) + router_pids(cove), ",".join(map(str, every)))
                light = wrk(url, 1, host)
                pin(instance_pids(cove, inst) + router_pids(cove), "1")
                saturated = wrk(url, CONNECTIONS, host, cpu="0")
                if n:
                    rounds["light"][name].append(light)
                    rounds["saturated"][name].append(saturated)
    finally:
        cove.teardown()
        registry.stop()
    figures = {}
    for mode, sides in rounds.items():
        pairs = list(zip(sides["direct"], sides["routed"], strict=True))
        figures[mode] = {
            **{f"{side}_{key}": summary([r[key] for r in runs])
               for side, runs in sides.items() for key in ("requests_per_s", "p50_ms", "p99_ms")},
            "throughput_ratio": summary([r["requests_per_s"] / d["requests_per_s"]
                                         for d, r in pairs]),
            "added_p50_ms": summary([r["p50_ms"] - d["p50_ms"] for d, r in pairs]),
            "added_p99_ms": summary([r["p99_ms"] - d["p99_ms"] for d, r in pairs]),
            "non_2xx": sum(r["non_2xx"] for runs in sides.values() for r in runs)}
    emit("router_overhead", {
        "light": figures["light"], "saturated": figures["saturated"],
        "wrk": {"threads": 1, "connections": {"light": 1, "saturated": CONNECTIONS},
                "duration": DURATION, "rounds": REPEATS, "warm_up_rounds": 1},
        "pinning": "saturated: wrk on CPU 0; instance and nginx on CPU 1",
        "instance": "large (1000 millicores, 512 MB)",
        "load_average_1m": {"before": round(load_before, 2),
                            "after": round(os.getloadavg()[0], 2)}})


def cove_instances(cove: CoveServer) -> list[str]:
    """Instance addresses, read from the router's own config (the API hides them)."""
    conf = (cove.home / "router" / "nginx.conf").read_text()
    return re.findall(r"server (\d+\.\d+\.\d+\.\d+:\d+) max_fails", conf)


if __name__ == "__main__":
    main()
