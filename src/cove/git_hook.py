"""The pre-receive hook of every app repository: build the pushed commit and release it.

git runs it inside `git http-backend`; what it prints on stderr reaches the pusher as
"remote:" lines, and a non-zero exit refuses the push.
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from cove.domain.events import Result, decode

ZERO = "0" * 40


def main() -> int:
    branch = os.environ.get("COVE_DEPLOY_BRANCH", "main")
    updates = [line.split() for line in sys.stdin.read().splitlines() if line.strip()]
    target = None
    for _old, new, ref in updates:
        if ref != f"refs/heads/{branch}":
            return refuse(f"pushes to {ref} are not deployed: push to {branch} "
                          f"(git push cove HEAD:{branch})")
        if new == ZERO:
            return refuse(f"deleting {branch} is not allowed")
        target = new
    if target is None:
        return 0
    archive = subprocess.run(["git", "archive", "--format=tar.gz", target],
                             capture_output=True, check=True).stdout
    url = (f"{os.environ['COVE_API_URL']}/v1/spaces/{os.environ['COVE_SPACE']}/apps/"
           f"{os.environ['COVE_APP']}/builds")
    result: Result | None = None
    try:
        with httpx.stream("POST", url, content=archive, timeout=None,
                          headers={"Authorization": f"Bearer {os.environ['COVE_TOKEN']}",
                                   "Content-Type": "application/gzip"}) as response:
            if response.status_code >= 400:
                response.read()
                return refuse(response.json().get("error", {}).get("message", response.text))
            for line in response.iter_lines():
                event = decode(line)
                if isinstance(event, Result):
                    result = event
                else:
                    print(event.text, file=sys.stderr, flush=True)
    except httpx.HTTPError as err:
        return refuse(f"could not reach Cove to build: {err}")
    if result is None:
        return refuse("the build ended without a result: see `cove builds`")
    return 0 if result.ok else 1


def refuse(message: str) -> int:
    print(f"!     {message}", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
