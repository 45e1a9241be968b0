"""Bare git repositories per app, served by `git http-backend`, with Cove's push hook."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

from cove.ports.repos import GitResponse

HOOK = """#!/bin/sh
# Written by Cove: builds what is pushed and refuses the push if the build fails.
exec "{python}" -m cove.git_hook
"""


class GitRepos:
    def __init__(self, root: Path, deploy_branch: str = "main") -> None:
        self.root = root
        self.deploy_branch = deploy_branch
        root.mkdir(parents=True, exist_ok=True)

    def path(self, space: str, app: str) -> Path:
        return self.root / space / f"{app}.git"

    def ensure(self, space: str, app: str) -> None:
        repo = self.path(space, app)
        if not (repo / "HEAD").exists():
            repo.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "--quiet", "--bare", "-b", self.deploy_branch,
                            str(repo)], check=True, capture_output=True)
            subprocess.run(["git", "-C", str(repo), "config", "http.receivepack", "true"],
                           check=True, capture_output=True)
        hook = repo / "hooks" / "pre-receive"
        text = HOOK.format(python=sys.executable)
        if not hook.exists() or hook.read_text() != text:
            hook.write_text(text)
            hook.chmod(0o755)

    def remove(self, space: str, app: str) -> None:
        shutil.rmtree(self.path(space, app), ignore_errors=True)

    def serve(self, space: str, app: str, method: str, path: str, query: str,
              content_type: str, body: BinaryIO, env: dict[str, str]) -> GitResponse:
        self.ensure(space, app)
        cgi = {
            "GIT_PROJECT_ROOT": str(self.root / space), "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{app}.git/{path}", "REQUEST_METHOD": method,
            "QUERY_STRING": query, "CONTENT_TYPE": content_type,
            "REMOTE_USER": env.get("COVE_USER", ""), "REMOTE_ADDR": "127.0.0.1",
            "COVE_DEPLOY_BRANCH": self.deploy_branch,
            "PATH": "/usr/local/bin:/usr/bin:/bin", **env,
        }
        proc = subprocess.Popen(["git", "http-backend"], stdin=body, stdout=subprocess.PIPE,
                                env=cgi)
        assert proc.stdout is not None
        status, headers = 200, {}
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("latin-1").rstrip("\r\n")
            if not line:
                break
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            else:
                headers[key.strip()] = value.strip()
        return GitResponse(status, headers, _stream(proc))


def _stream(proc: subprocess.Popen[bytes]) -> Iterator[bytes]:
    assert proc.stdout is not None
    try:
        # read1: what the header parsing already buffered first, then whatever git has
        # written so far, so push progress reaches the pusher as it happens.
        reader = cast(io.BufferedReader, proc.stdout)
        while chunk := reader.read1(65536):
            yield chunk
    finally:
        proc.stdout.close()
        proc.wait()
