"""Density: memory each idle instance costs beyond the app's own RSS.

Per instance we read the app's RSS, the init's (PID 1 in the container) and the
engine's monitor process (conmon), and the container cgroup's memory usage.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx

from bench.common import emit, prepare, spec, summary

COUNT = int(os.environ.get("BENCH_INSTANCES", "10"))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    runtime, _ = prepare()
    try:
        instances = [runtime.start(spec(n + 1)) for n in range(COUNT)]
        for inst in instances:
            for _ in range(200):
                try:
                    if httpx.get(f"http://{inst.address}/").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.02)
        time.sleep(1)
        app, init, conmon, cgroup = [], [], [], []
        for inst in instances:
            data = json.loads(runtime.engine.run(
                "container", "inspect", "--format", "json",
                f"cove-{runtime.install}-{inst.name}").stdout)[0]
            init_pid = data["State"]["Pid"]
            children = Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text().split()
            app.append(rss_kb(int(children[0])) / 1024)
            init.append(rss_kb(init_pid) / 1024)
            conmon.append(rss_kb(data["State"]["ConmonPid"]) / 1024)
            lines = Path(f"/proc/{init_pid}/cgroup").read_text().splitlines()
            path = next(line.split(":", 2)[2] for line in lines if ":memory:" in line)
            usage = int(Path(f"/sys/fs/cgroup/memory{path}/memory.usage_in_bytes").read_text())
            cgroup.append(usage / 1024 / 1024)
    finally:
        runtime.remove_everything(1)
    overhead = [i + c for i, c in zip(init, conmon, strict=True)]
    emit("density", {"unit": "MiB", "instances": COUNT, "app_rss": summary(app),
                     "init_rss": summary(init), "conmon_rss": summary(conmon),
                     "overhead_per_instance": summary(overhead),
                     "cgroup_usage_incl_page_cache": summary(cgroup)})


if __name__ == "__main__":
    main()
