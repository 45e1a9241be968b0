"""`git push` to the first 200 of the new version, for any git-push platform.

The same measurement for Cove and for another platform (Piku, Dokku, ...): a Flask +
gunicorn app (bench/apps/flask) is pushed to `--remote`, and `--url` is polled until it
answers with the version just pushed. Rounds of a cold push (a dependency manifest never
seen: dependencies installed again) and a warm one (code only), after a warm-up round;
medians with min/max and the load average, as JSON.

    python3 -m bench.push_to_200 --remote REMOTE --url URL [--host HOST] [--branch main]
                                 [--repeats 5]

Without `--remote`, it starts a Cove of its own (default settings) and measures it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from tests.support.apps import git

from bench.common import bench_server, emit, summary, timed_push

APP = Path(__file__).parent / "apps" / "flask"


def push_until_live(work: Path, remote: str, branch: str, url: str, host: str | None,
                    marker: str, cold: bool) -> float:
    code = (APP / "app.py").read_text().replace('MARKER = "first"', f'MARKER = "{marker}"')
    (work / "app.py").write_text(code)
    if cold:
        with open(work / "requirements.txt", "a") as manifest:
            manifest.write(f"# {uuid.uuid4().hex}\n")
    git(work, "add", ".")
    git(work, "commit", "-qm", marker)
    return timed_push(work, remote, f"HEAD:{branch}", url, {"Host": host} if host else {},
                      f"says {marker}")


def measure(remote: str, branch: str, url: str, host: str | None,
            repeats: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="cove-bench-push-"))
    shutil.copytree(APP, work, dirs_exist_ok=True)
    git(work, "init", "-q", "-b", "main")
    load_before = os.getloadavg()[0]
    cold, warm = [], []
    for n in range(repeats + 1):  # round 0 warms up (and makes the app)
        cold.append(push_until_live(work, remote, branch, url, host, f"cold-{n}", cold=True))
        warm.append(push_until_live(work, remote, branch, url, host, f"warm-{n}", cold=False))
    return {"unit": "seconds", "cold_push_to_200": summary(cold[1:]),
            "warm_push_to_200": summary(warm[1:]),
            "load_average_1m": {"before": round(load_before, 2),
                                "after": round(os.getloadavg()[0], 2)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remote", help="the git remote to push to (omit: a Cove of its own)")
    parser.add_argument("--url", help="where the app answers")
    parser.add_argument("--host", help="the Host header to send, if the URL does not name it")
    parser.add_argument("--branch", default="main", help="the branch the platform deploys")
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS", "5")))
    args = parser.parse_args()
    if args.remote:
        emit("push_to_200", {"platform": args.remote,
                             **measure(args.remote, args.branch, args.url, args.host,
                                       args.repeats)})
        return
    cove = bench_server(Path(tempfile.mkdtemp(prefix="cove-bench-push-cove-")))
    cove.start()
    try:
        user = cove.user("bench")
        user.signup()
        user.run("apps", "create", "flask")
        remote = (f"{cove.url.replace('://', f'://bench:{user.token}@')}/git/bench/flask.git")
        emit("push_to_200", {"platform": "cove (local pool, default settings)",
                             **measure(remote, "main", cove.url, "flask-bench.localhost",
                                       args.repeats)})
    finally:
        cove.teardown()


if __name__ == "__main__":
    main()
