"""Router overhead: wrk through Cove's nginx router vs directly to the same instance."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from tests.support.cove import make_server
from tests.support.services import build_hello_image, push, start_registry

from bench.common import emit

DURATION = os.environ.get("BENCH_DURATION", "5s")
CONNECTIONS = os.environ.get("BENCH_CONNECTIONS", "32")


def wrk(url: str, host: str | None = None) -> dict[str, float]:
    args = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency", url]
    if host:
        args[1:1] = ["-H", f"Host: {host}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests_per_s": rps, "p99_ms": round(float(p99.group(1)) * scale, 3),
            "non_2xx": int(errors.group(1)) if errors else 0}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cove-bench-"))
    build_hello_image("localhost/cove-bench/hello:latest")
    registry = start_registry(work / "registry")
    push("localhost/cove-bench/hello:latest", f"{registry.host}/bench/hello:1")
    cove = make_server(work)
    cove.start()
    try:
        user = cove.user("bench")
        user.signup()
        user.run("apps", "create", "hello")
        user.run("deploy", "hello", f"{registry.host}/bench/hello:1")
        # the largest size (a whole core), so the app's CPU limit is not what is measured
        user.run("scale", "hello", "web=1:large")
        with user.api() as api:
            [inst] = [i for i in cove_instances(cove, api)]
        direct = wrk(f"http://{inst}/")
        routed = wrk(f"{cove.url}/", host="hello-bench.localhost")
    finally:
        cove.teardown()
        registry.stop()
    emit("router_overhead", {
        "direct": direct, "through_router": routed,
        "throughput_ratio": round(routed["requests_per_s"] / direct["requests_per_s"], 3),
        "added_p99_ms": round(routed["p99_ms"] - direct["p99_ms"], 3),
        "wrk": {"threads": 2, "connections": int(CONNECTIONS), "duration": DURATION},
        "instance": "large (1000 millicores, 512 MB)"})


def cove_instances(cove, api) -> list[str]:  # type: ignore[no-untyped-def]
    """Instance addresses, read from the router's own config (the API hides them)."""
    conf = (cove.home / "router" / "nginx.conf").read_text()
    return re.findall(r"server (\d+\.\d+\.\d+\.\d+:\d+) max_fails", conf)


if __name__ == "__main__":
    main()
