"""The project's own rules: lint, strict typing and the layer contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import ROOT


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "ruff", "check", "src", "tests", "bench"],
    [sys.executable, "-m", "mypy"],
    [str(Path(sys.executable).parent / "lint-imports")],
], ids=["ruff", "mypy", "import-linter"])
def test_the_tree_passes(command: list[str]) -> None:
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stdout + proc.stderr
