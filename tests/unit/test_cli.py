"""The CLI's own refusals: usage errors say what to type, client-side errors read like the
API's, and neither is a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cove(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COVE_CONFIG_DIR=str(tmp_path / "config"),
               COVE_URL="http://127.0.0.1:9")  # nothing listens on the discard port
    return subprocess.run([sys.executable, "-m", "cove.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_release_that_is_not_one_is_a_usage_error(tmp_path: Path) -> None:
    proc = cove(tmp_path, "rollback", "hello", "vx", "--space", "alice")
    assert proc.returncode == 2
    assert "'vx' is not a release: give one like v2" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_scale_and_config_arguments_are_checked_before_anything_is_sent(
        tmp_path: Path) -> None:
    scaled = cove(tmp_path, "scale", "hello", "web=three", "--space", "alice")
    assert scaled.returncode == 2 and "use TYPE=COUNT[:SIZE]" in scaled.stderr
    configured = cove(tmp_path, "config", "set", "hello", "NOVALUE", "--space", "alice")
    assert configured.returncode == 2 and "use KEY=VALUE" in configured.stderr


def test_client_side_errors_read_like_the_apis(tmp_path: Path) -> None:
    no_space = cove(tmp_path, "apps")
    assert no_space.returncode == 1
    assert no_space.stderr.strip() == "!    no current space: log in, or pass --space"
    down = cove(tmp_path, "apps", "--space", "alice")
    assert down.returncode == 1 and "cannot reach Cove at http://127.0.0.1:9" in down.stderr
    assert "Traceback" not in down.stderr + no_space.stderr
