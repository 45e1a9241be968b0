"""Source trees for build tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.services import hello_binary_path


def dockerfile_app(root: Path, greeting: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(hello_binary_path(), root / "hello")
    (root / "Dockerfile").write_text(
        f'FROM scratch\nCOPY hello /hello\nENV GREETING="{greeting}"\n'
        'USER 10001:10001\nCMD ["/hello"]\n')
    (root / ".coveignore").write_text("*.tmp\n")
    (root / "scratch.tmp").write_text("not uploaded")
    return root
