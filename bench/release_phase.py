"""The release phase: a change with no build (config set, scale) to the new state serving.

Through the API (the CLI's own start-up is not Cove's release phase), on the example app:
- `config set`: from the request to its answer, and to the first 200 of the new release
  through the router;
- `scale web=2`: from the request to the second instance answering through the router;
beside the baseline measured interleaved in the same run: one hardened container of the
same image started to its first 200 (what any new instance costs at least). Medians of
BENCH_REPEATS (default 7) after one warm-up of each, with min/max and the load average.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import httpx
from tests.support.cove import CliUser, CoveServer

from bench.cold_start import first_200
from bench.common import bench_server, emit, example_in_a_registry, prepare, spec, summary

REPEATS = int(os.environ.get("BENCH_REPEATS", "7"))
APP = "/v1/spaces/bench/apps/rel"


def until(check: object, within: float = 60) -> float:
    began = time.perf_counter()
    while time.perf_counter() - began < within:
        try:
            if check():  # type: ignore[operator]
                return time.perf_counter() - began
        except httpx.HTTPError:
            pass
        time.sleep(0.005)
    raise TimeoutError(f"not within {within:.0f}s")


def config_set(cove: CoveServer, user: CliUser, n: int) -> tuple[float, float]:
    """(request to answer, request to the first 200 of the new release)."""
    with user.api() as api:
        began = time.perf_counter()
        answer = api.patch(f"{APP}/config", json={"vars": {"ROUND": str(n)}})
        answered = time.perf_counter() - began
    answer.raise_for_status()
    version = answer.json()["release"]
    until(lambda: f"release={version}" in cove.app_get("rel-bench.localhost").text)
    return answered, time.perf_counter() - began


def scale(cove: CoveServer, user: CliUser, count: int) -> tuple[float, float]:
    """(request to answer, request to `count` instances answering through the router)."""
    with user.api() as api:
        began = time.perf_counter()
        api.patch(f"{APP}/formation", json={"web": {"count": count}}).raise_for_status()
        answered = time.perf_counter() - began

    def answering() -> bool:
        seen = {cove.app_get("rel-bench.localhost").text.split("instance=")[1].strip()
                for _ in range(4 * count)}
        return len(seen) == count

    until(answering)
    return answered, time.perf_counter() - began


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="cove-bench-release-"))
    registry, image = example_in_a_registry(root)
    runtime, _ = prepare()
    cove = bench_server(root / "cove", COVE_LOCAL_REGISTRIES=registry.host)
    cove.start()
    figures: dict[str, list[float]] = {}
    try:
        user = cove.tenant("bench", "rel")
        user.run("deploy", "rel", image)
        for n in range(REPEATS + 1):  # the first round is the warm-up
            rounds = {}
            rounds["config_set_answered"], rounds["config_set_to_first_200"] = \
                config_set(cove, user, n)
            rounds["scale_up_answered"], rounds["scale_up_to_serving"] = scale(cove, user, 2)
            scale(cove, user, 1)
            began = time.perf_counter()
            inst = runtime.start(spec(n + 1))
            first_200(f"http://{inst.address}/")
            rounds["baseline_container_start_to_first_200"] = time.perf_counter() - began
            runtime.stop(inst.name, 1)
            if n:
                for key, value in rounds.items():
                    figures.setdefault(key, []).append(value)
    finally:
        cove.teardown()
        runtime.remove_everything(1)
        registry.stop()
        load = os.getloadavg()
    emit("release_phase", {"unit": "seconds", "load_average_1m_at_end": round(load[0], 2),
                           **{k: summary(v) for k, v in figures.items()}})


if __name__ == "__main__":
    main()
