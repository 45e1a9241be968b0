"""Cold builds with and without the dependency cache.

Two servers side by side: one as it runs by default (builds fetch through the dependency
cache), one with the cache off (`COVE_DEPENDENCY_CACHE_PORT=0`: builds fetch from the
registries). Each round pushes a dependency manifest neither has seen (so the layer cache
misses and pip or npm runs) to each, alternately, and times `git push` to the first 200
of the new version. The first round is the warm-up (it fills the cache). Medians of
BENCH_REPEATS (default 5) rounds per language (BENCH_LANGUAGES, default python,node), with
min/max and the load average.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.build_deploy import checkout, new_manifest, push_until_live
from bench.common import bench_server, emit, summary
from cove.adapters.builder.stacks import build_stack, stack_exists
from cove.adapters.engine import Engine

LANGUAGES = os.environ.get("BENCH_LANGUAGES", "python,node").split(",")
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="cove-bench-deps-"))
    if not stack_exists(Engine(root / "engine")):
        build_stack(Engine(root / "engine"), emit=lambda line: None)
    servers = {"cached": bench_server(root / "cached"),
               "direct": bench_server(root / "direct", COVE_DEPENDENCY_CACHE_PORT="0")}
    load_before = os.getloadavg()[0]
    figures: dict[str, object] = {}
    try:
        users = {}
        for side, cove in servers.items():
            cove.start()
            users[side] = cove.user("bench")
            users[side].signup()
        for language in LANGUAGES:
            times: dict[str, list[float]] = {side: [] for side in servers}
            works = {}
            for side in servers:
                users[side].run("apps", "create", language)
                works[side] = checkout(root / side, language, language)
            for n in range(REPEATS + 1):  # round 0 warms up (and fills the cache)
                for side, cove in servers.items():
                    new_manifest(works[side], language)
                    times[side].append(push_until_live(
                        cove, users[side], language, works[side], f"cold {side} {n}",
                        "manifest", language))
            figures[language] = {
                **{f"cold_push_to_200_{side}": summary(t[1:]) for side, t in times.items()},
                "cached_over_direct": summary([c / d for c, d in zip(
                    times["cached"][1:], times["direct"][1:], strict=True)])}
    finally:
        for cove in servers.values():
            cove.teardown()
    emit("dependency_cache", {"unit": "seconds", **figures,
                              "load_average_1m": {"before": round(load_before, 2),
                                                  "after": round(os.getloadavg()[0], 2)}})


if __name__ == "__main__":
    main()
