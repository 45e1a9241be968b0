"""Faults on a real Cove under load: what they cost in failed requests and how long until
everything converges again.

Per change (deploy, config, rollback, scale) and per step of it where the broker is killed
(SIGKILL, `COVE_CRASH_AT`): the time from the kill to a converged app (record, instances,
route and containers agree), beside the baseline of the same change with no crash (from
the command to converged), interleaved. Then the router killed three ways and an instance
killed, and a redeploy under 8 concurrent clients. Failed requests are counted per fault
over 2 clients hammering the app (2 instances) through the router. BENCH_REPEATS (default
3) rounds, after a first deploy that pulls and warms everything.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.chaos import (
    CHANGES,
    Target,
    crash_during,
    failures,
    kill_instance,
    kill_router,
    load,
    wait_converged,
)

from bench.common import bench_server, emit, example_in_a_registry, summary
from cove.crashpoints import STEPS

REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
# The steps each change passes (a scale starts no release; scaling down starts nothing).
STEPS_OF = {"deploy": STEPS, "config": STEPS, "rollback": STEPS,
            "scale-up": ("local.started", "local.routed"), "scale-down": ("local.routed",)}


def plain(target: Target, change: str, n: int) -> float:
    """The baseline: the same change with nothing killed, from the command to converged."""
    began = time.monotonic()
    target.user.run(*CHANGES[change](target.app, target.image, n))
    return time.monotonic() - began + wait_converged(target)


def redeploy(target: Target, n: int) -> dict[str, Any]:
    return {"fault": "redeploy under 8 clients (to converged)",
            "recovered_s": plain(target, "config", n)}


def counted(target: Target, fault: Callable[..., dict[str, Any]], *args: Any,
            clients: int = 2) -> dict[str, Any]:
    """The fault's own figures, and the requests of `clients` loops while it ran."""
    with load(target, clients) as stats:
        result = fault(target, *args)
    ok, failed, _ = failures(stats)
    return {**result, "requests": ok + failed, "failed": failed}


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="cove-bench-chaos-"))
    registry, image = example_in_a_registry(root)
    cove = bench_server(root / "cove", COVE_LOCAL_REGISTRIES=registry.host)
    cove.start()
    crashes: dict[str, list[float]] = {}
    baselines: dict[str, list[float]] = {}
    faults: dict[str, list[dict[str, Any]]] = {}
    requests = failed = 0
    try:
        user = cove.tenant("bench", "chaos")
        user.run("deploy", "chaos", image)
        user.run("scale", "chaos", "web=2")
        target = Target(cove, user, "chaos", image)
        n = 0
        for _ in range(REPEATS):  # (the first deploy above pulled and warmed everything)
            for change, steps in STEPS_OF.items():
                for step in steps:
                    n += 1
                    back = "scale-down" if change == "scale-up" else \
                        "scale-up" if change == "scale-down" else None
                    if back:  # each scale starts from the formation it changes
                        plain(target, back, n)
                    base = plain(target, change, n)
                    if back:
                        plain(target, back, n)
                    crash = counted(target, crash_during, change, step, n)
                    crashes.setdefault(f"{change} @ {step}", []).append(crash["converged_s"])
                    baselines.setdefault(change, []).append(base)
                    requests += crash["requests"]
                    failed += crash["failed"]
                    if change == "scale-up":
                        plain(target, "scale-down", n)
            for how in ("master-kill", "workers-kill", "master-term"):
                result = counted(target, kill_router, how)
                wait_converged(target)
                faults.setdefault(result["fault"], []).append(result)
            result = counted(target, kill_instance, 1)
            faults.setdefault(result["fault"], []).append(result)
            n += 1
            result = counted(target, redeploy, n, clients=8)
            faults.setdefault(result["fault"], []).append(result)
    finally:
        cove.teardown()
        registry.stop()
        load_avg = os.getloadavg()
    emit("chaos", {
        "unit": "seconds", "load_average_1m_at_end": round(load_avg[0], 2),
        "instances": 2, "clients": 2,
        "broker_killed": {"requests": requests, "failed": failed,
                          "kill_to_converged": {k: summary(v) for k, v in crashes.items()},
                          "baseline_change_to_converged": {
                              k: summary(v) for k, v in baselines.items()}},
        "other_faults": {k: {"requests": sum(r["requests"] for r in v),
                             "failed": sum(r["failed"] for r in v),
                             "recovered": summary([r["recovered_s"] for r in v])}
                         for k, v in faults.items()},
    })


if __name__ == "__main__":
    main()
