"""Source trees for build tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.services import hello_binary_path

APPS = Path(__file__).resolve().parents[1] / "apps"  # an example app for every builder
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}


def dockerfile_app(root: Path, greeting: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(hello_binary_path(), root / "hello")
    (root / "Dockerfile").write_text(
        f'FROM scratch\nCOPY hello /hello\nENV GREETING="{greeting}"\n'
        'USER 10001:10001\nCMD ["/hello"]\n')
    (root / ".coveignore").write_text("*.tmp\n")
    (root / "scratch.tmp").write_text("not uploaded")
    return root


def git(cwd: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, **GIT_ENV), timeout=300)
    assert (proc.returncode == 0) == ok, proc.stderr
    return proc
