"""Deploys from source: `git push` of each language's example to the first 200 of the new
version.

Cold: the dependency manifest changed, so dependencies are installed again. Warm: only
code changed, so the dependency layer comes from the cache. Then 5 pushes of the Python
example to 5 apps at once. The stack is built first if missing (not timed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from tests.support.apps import APPS, GIT_ENV, git
from tests.support.cove import CliUser, CoveServer, make_server

from bench.common import emit
from cove.adapters.builder.stacks import build_stack, stack_exists
from cove.adapters.engine import Engine

CODE = {"python": "app.py", "node": "server.js", "go": "main.go"}


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
    host = f"{app}-{user.name}.localhost"
    began = time.perf_counter()
    # The new version may answer before the push returns (the old one drains meanwhile).
    push = subprocess.Popen(["git", "push", "-q", url, "main"], cwd=work,
                            env=dict(os.environ, **GIT_ENV), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    while marker not in httpx.get(cove.url, headers={"Host": host}).text:
        if push.poll() not in (None, 0):
            raise RuntimeError(f"git push failed: {push.communicate()[1]}")
        time.sleep(0.05)
    live = time.perf_counter() - began
    if push.wait() != 0:
        raise RuntimeError(f"git push failed: {push.communicate()[1]}")
    return live


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="cove-bench-build-"))
    engine = Engine(root / "engine")
    if not stack_exists(engine):
        build_stack(engine, emit=lambda line: None)
    cove = make_server(root)
    cove.start()
    try:
        user = cove.user("bench")
        user.signup()
        figures: dict[str, float] = {}
        for language in CODE:
            user.run("apps", "create", language)
            work = checkout(root, language, language)
            new_manifest(work, language)
            cold = push_until_live(cove, user, language, work, "cold deploy", "first", language)
            warm = push_until_live(cove, user, language, work, "warm deploy", "code only",
                                   language)
            figures.update({f"{language}_cold_push_to_200": round(cold, 2),
                            f"{language}_warm_push_to_200": round(warm, 2),
                            f"{language}_warm_over_cold": round(warm / cold, 3)})
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
                          "builds_at_once_per_space": 2})


if __name__ == "__main__":
    main()
