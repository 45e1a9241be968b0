"""A redeploy under sustained load: is there a window without a 200?

wrk keeps BENCH_CONNECTIONS (default 16) connections busy through the router for the whole
round while a probe requests the app in a loop and notes when each 200 came and which
release answered. Each round is a `config set` (a new release, every instance replaced)
of an app with 1 and then 2 web instances. Per round: the longest time between two 200s
the probe saw (from 1 s before the change to the end of the round), the time from the
request to the first 200 of the new release, and the failures wrk and the probe counted.
The probe's own gap with nothing changing, in the same rounds, is the baseline. Medians of
BENCH_REPEATS (default 5) after a warm-up round, with min/max and the load average.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from tests.support.cove import CliUser, CoveServer

from bench.common import bench_server, emit, example_in_a_registry, summary

REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
ROUND_S = 8  # wrk runs this long; the change comes BEFORE_S into it
BEFORE_S = 2.0


class Probe:
    """Requests the app in a loop and notes (time of answer, status, release) for each."""

    def __init__(self, cove: CoveServer, host: str) -> None:
        self.seen: list[tuple[float, int, str]] = []
        self._stop = threading.Event()
        self._client = httpx.Client(base_url=cove.url, headers={"Host": host}, timeout=10)
        self._thread = threading.Thread(target=self._loop)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self._client.get("/")
                status, text = answer.status_code, answer.text
            except httpx.HTTPError:
                status, text = 0, ""
            release = text.split("release=")[1].split()[0] if "release=" in text else ""
            self.seen.append((time.perf_counter(), status, release))

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._client.close()

    def longest_gap(self, since: float, until: float) -> float:
        """The longest time in [since, until] between two 200s (or an edge and a 200)."""
        times = [since, *(t for t, s, _ in self.seen if s == 200 and since <= t <= until),
                 until]
        return max(b - a for a, b in itertools.pairwise(times))

    def failed(self, since: float) -> int:
        return sum(1 for t, s, _ in self.seen if t >= since and s != 200)

    def first(self, release: str, since: float) -> float:
        return next(t for t, s, r in self.seen if t >= since and s == 200 and r == release)


def wrk(cove: CoveServer, host: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{ROUND_S}s", "--timeout", "5s",
         "-H", f"Host: {host}", cove.url + "/"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_failures(out: str) -> dict[str, int]:
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                        r"timeout (\d+)", out)
    done = re.search(r"(\d+) requests in", out)
    assert done is not None, out
    errors = [int(n) for n in sockets.groups()] if sockets else [0, 0, 0, 0]
    return {"requests": int(done.group(1)), "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
            **{f"socket_{kind}": n for kind, n in
               zip(("connect", "read", "write", "timeout"), errors, strict=True)}}


def one_round(cove: CoveServer, user: CliUser, app: str, n: int) -> dict[str, Any]:
    host = f"{app}-{user.name}.localhost"
    with Probe(cove, host) as probe:
        load = wrk(cove, host)
        time.sleep(BEFORE_S)
        quiet = (time.perf_counter() - BEFORE_S + 0.5, time.perf_counter())
        with user.api() as api:
            began = time.perf_counter()
            answer = api.patch(f"/v1/spaces/{user.name}/apps/{app}/config",
                               json={"vars": {"ROUND": str(n)}})
        answer.raise_for_status()
        out, _ = load.communicate(timeout=ROUND_S + 30)
        ended = time.perf_counter()
    release = str(answer.json()["release"])
    return {"longest_gap_s": probe.longest_gap(began - 1, ended),
            "baseline_gap_s": probe.longest_gap(*quiet),
            "to_new_release_s": probe.first(release, began) - began,
            "probe_failed": probe.failed(began - 1), **wrk_failures(out)}


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="cove-bench-redeploy-"))
    registry, image = example_in_a_registry(root)
    cove = bench_server(root / "cove", COVE_LOCAL_REGISTRIES=registry.host)
    cove.start()
    rounds: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    try:
        user = cove.tenant("bench", "one")
        user.run("deploy", "one", image)
        user.run("apps", "create", "two")
        user.run("deploy", "two", image)
        user.run("scale", "two", "web=2")
        for n in range(REPEATS + 1):  # the first round is the warm-up
            for count, app in ((1, "one"), (2, "two")):  # interleaved
                result = one_round(cove, user, app, n)
                if n:
                    rounds[count].append(result)
    finally:
        cove.teardown()
        registry.stop()
        load_avg = os.getloadavg()
    emit("redeploy_under_load", {
        "unit": "seconds", "load_average_1m_at_end": round(load_avg[0], 2),
        "wrk_connections": CONNECTIONS, "round_s": ROUND_S,
        **{f"web={count}": {
            **{key: summary([r[key] for r in results]) for key in
               ("longest_gap_s", "baseline_gap_s", "to_new_release_s")},
            **{key: sum(r[key] for r in results) for key in
               ("requests", "non_2xx", "socket_connect", "socket_read", "socket_write",
                "socket_timeout", "probe_failed")}}
           for count, results in rounds.items()},
    })


if __name__ == "__main__":
    main()
