"""Instance cold start: start -> first HTTP 200, a hardened container vs a bare process.

Both run the same binary and are polled the same way; the difference is what the
container engine, isolation and limits cost at start-up. Interleaved (a container, then
the bare process, per round), after one warm-up round; medians with min/max and the load
average.
"""

from __future__ import annotations

import os
import subprocess
import time

import httpx
from tests.support.services import free_port

from bench.common import emit, hello_binary_path, prepare, spec, summary

RUNS = int(os.environ.get("BENCH_RUNS", "20"))


def first_200(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.002)
    raise TimeoutError(url)


def main() -> None:
    runtime, _ = prepare()
    binary = hello_binary_path()
    container, bare = [], []
    load_before = os.getloadavg()[0]
    try:
        for n in range(RUNS + 1):  # round 0 warms up
            began = time.perf_counter()
            inst = runtime.start(spec(n + 1))
            first_200(f"http://{inst.address}/")
            container.append(time.perf_counter() - began)
            runtime.stop(inst.name, 1)

            port = free_port()
            began = time.perf_counter()
            proc = subprocess.Popen([str(binary)], env={"PORT": str(port)},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            first_200(f"http://127.0.0.1:{port}/")
            bare.append(time.perf_counter() - began)
            proc.terminate()
            proc.wait()
            if n == 0:
                container.clear()
                bare.clear()
    finally:
        runtime.remove_everything(1)
    c, b = summary(container), summary(bare)
    emit("cold_start", {"unit": "seconds", "container": c, "bare_process": b,
                        "overhead_median": round(c["median"] - b["median"], 4),
                        "load_average_1m": {"before": round(load_before, 2),
                                            "after": round(os.getloadavg()[0], 2)}})


if __name__ == "__main__":
    main()
