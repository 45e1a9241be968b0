"""Deploys from source: `git push` of each language's example to the first 200 of the new
version.

Cold: the dependency manifest changed, so dependencies are installed again. Warm: only
code changed (Python and Express: no build runs, the code becomes a new layer of the last
image; Go compiles with its modules from the cache). Per language, rounds of a cold and a
warm push after a warm-up round (`BENCH_REPEATS`, default 5; `BENCH_LANGUAGES`, default
all), medians with min/max and the load average. Then 5 pushes of the Python example to 5
apps at once (one run). The stack is built first if missing (not timed).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.apps import APPS, git
from tests.support.cove import CliUser, CoveServer

from bench.common import bench_server, emit, summary, timed_push
from cove.adapters.builder.stacks import build_stack, stack_exists
from cove.adapters.engine import Engine

CODE = {"python": "app.py", "node": "server.js", "go": "main.go"}
LANGUAGES = os.environ.get("BENCH_LANGUAGES", ",".join(CODE)).split(",")
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))


def checkout(root: Path, name: str, language: str = "python") -> Path:
    work = root / name
    shutil.copytree(APPS / language, work)
    git(work, "init", "-q", "-b", "main")
    return work


def new_manifest(work: Path, language: str) -> None:
    """A dependency manifest never seen before: nothing of it is cached."""
    tag = uuid.uuid4().hex
    if language == "python":
        (work / "requirements.txt").write_text(
            f"six==1.16.0\nrequests==2.32.3\nflask==3.0.3\n# {tag}\n")
    elif language == "node":
        manifest = json.loads((work / "package.json").read_text())
        (work / "package.json").write_text(json.dumps({**manifest, "description": tag}))
    else:
        (work / "go.mod").write_text((work / "go.mod").read_text() + f"// {tag}\n")


def push_until_live(cove: CoveServer, user: CliUser, app: str, work: Path, marker: str,
                    message: str, language: str = "python") -> float:
    code = CODE[language]
    (work / code).write_text((APPS / language / code).read_text().replace("says hi",
                                                                          marker))
    git(work, "add", ".")
    git(work, "commit", "-qm", message)
    url = f"{cove.url.replace('://', f'://{user.name}:{user.token}@')}/git/{user.name}/{app}.git"
    return timed_push(work, url, "main", cove.url, {"Host": f"{app}-{user.name}.localhost"},
                      marker)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="cove-bench-build-"))
    engine = Engine(root / "engine")
    if not stack_exists(engine):
        build_stack(engine, emit=lambda line: None)
    cove = bench_server(root)
    cove.start()
    load_before = os.getloadavg()[0]
    try:
        user = cove.user("bench")
        user.signup()
        figures: dict[str, object] = {}
        for language in LANGUAGES:
            user.run("apps", "create", language)
            work = checkout(root, language, language)
            cold, warm = [], []
            for n in range(REPEATS + 1):  # round 0 warms up
                new_manifest(work, language)
                took = push_until_live(cove, user, language, work, f"cold deploy {n}",
                                       "manifest", language)
                cold.append(took)
                warm.append(push_until_live(cove, user, language, work, f"warm deploy {n}",
                                            "code only", language))
            figures.update({f"{language}_cold_push_to_200": summary(cold[1:]),
                            f"{language}_warm_push_to_200": summary(warm[1:]),
                            f"{language}_warm_over_cold": summary(
                                [w / c for w, c in zip(warm[1:], cold[1:], strict=True)])})
        works = []
        for n in range(5):
            user.run("apps", "create", f"par{n}")
            works.append(checkout(root, f"par{n}"))
        began = time.perf_counter()
        with ThreadPoolExecutor(5) as pool:
            list(pool.map(lambda n: push_until_live(cove, user, f"par{n}", works[n],
                                                    f"parallel {n}", "parallel"), range(5)))
        parallel = time.perf_counter() - began
    finally:
        cove.teardown()
    emit("build_deploy", {"unit": "seconds", **figures,
                          "five_parallel_pushes_total": round(parallel, 2),
                          "builds_at_once_per_space": 2,
                          "load_average_1m": {"before": round(load_before, 2),
                                              "after": round(os.getloadavg()[0], 2)}})


if __name__ == "__main__":
    main()
