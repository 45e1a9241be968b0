from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cove import CoveServer, make_server


@pytest.fixture(scope="session")
def cove(workdir: Path, registry: object) -> Iterator[CoveServer]:
    server = make_server(workdir / "e2e")
    server.start()
    yield server
    server.teardown()
