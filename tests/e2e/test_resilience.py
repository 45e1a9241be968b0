"""The broker can die: apps keep serving, and a restart adopts what runs and fixes crashes."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from tests.support.cove import make_server
from tests.support.services import Postgres, Registry, wait_until


def test_apps_survive_the_broker_and_crashes_are_restarted(workdir: Path, registry: Registry,
                                                           postgres: Postgres) -> None:
    # This broker keeps its state in PostgreSQL, the production store.
    cove = make_server(workdir / "resilience", COVE_DATABASE_URL=postgres.url)
    cove.start()
    try:
        dora = cove.user("dora")
        dora.signup()
        dora.run("apps", "create", "tough")
        dora.run("config", "set", "tough", "ALLOW_CRASH=1")
        dora.run("deploy", "tough", f"{registry.host}/examples/hello:1")
        host = "tough-dora.localhost"
        before = json.loads(dora.run("ps", "tough", "--json").stdout)

        cove.kill()  # SIGKILL: no chance to clean up
        for _ in range(5):
            assert cove.app_get(host).status_code == 200

        cove.start()
        after = json.loads(dora.run("ps", "tough", "--json").stdout)
        assert after == before  # adopted, not restarted
        assert cove.app_get(host).status_code == 200

        with contextlib.suppress(Exception):
            cove.app_get(host, "/crash")
        wait_until(lambda: "exited with code 3" in dora.run("logs", "tough").stdout, 20,
                   "the crash to be noticed")
        wait_until(lambda: cove.app_get(host).status_code == 200, 30, "the restart")
        [inst] = json.loads(dora.run("ps", "tough", "--json").stdout)
        assert inst["state"] == "up" and inst["started_at"] != before[0]["started_at"]
    finally:
        cove.teardown()
