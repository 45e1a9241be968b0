"""The local pool's own rules that services do not see: whose logs it can read."""

from __future__ import annotations

from pathlib import Path

from cove.adapters.runtime.local.pool import LocalPool
from cove.adapters.runtime.logs import FileLogs
from tests.support.fakes import FakeHealth, FakeRouter, FakeRuntime


def test_instance_output_is_readable_for_an_app_that_never_ran(tmp_path: Path) -> None:
    """A first deploy that crashed left output but no release: its user must read it."""
    logs = FileLogs(tmp_path)
    path = logs.instance_path(7, "web", 1, 1)
    path.write_text("2026-01-01T00:00:00.000000000Z stderr F Traceback: boom\n")
    logs.record(7, "v1 failed: instance web.1 never became healthy")
    pool = LocalPool(FakeRuntime(), FakeRouter(), FakeHealth(), logs)
    lines = list(pool.logs("alice", "hello", 10, False, app_id=7))
    assert [(line.source, line.text) for line in lines] == [("web.1", "Traceback: boom")]
    # Cove's events stay the events log's; the pool gives only what instances wrote.
    assert [line.text for line in logs.read(7, 10)] == [
        "v1 failed: instance web.1 never became healthy"]
