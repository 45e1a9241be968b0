"""The project's own rules: lint, strict typing and the layer contract."""

from __future__ import annotations

import ast
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


def test_every_command_a_test_runs_is_bounded_in_time() -> None:
    """A hung command (git, the engine, kubectl) held the suite until pytest's 600 s limit
    and then failed without saying what hung: every one a test runs has a timeout."""
    unbounded = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("run", "check_output", "check_call", "call") \
                    and isinstance(node.func.value, ast.Name) \
                    and node.func.value.id == "subprocess" \
                    and not any(k.arg == "timeout" for k in node.keywords):
                unbounded.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert unbounded == []
