from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.adapters.engine import Engine
from cove.adapters.runtime.local.podman import PodmanRuntime
from cove.adapters.runtime.logs import FileLogs
from cove.ports.runtime import InstanceSpec


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[PodmanRuntime]:
    rt = PodmanRuntime(Engine(tmp_path / "engine"), FileLogs(tmp_path / "logs"),
                       install=secrets.token_hex(3), grace_seconds=2)
    yield rt
    rt.remove_everything(1)


def spec(image: str, space: str = "alice", app: str = "hello", index: int = 1,
         env: dict[str, str] | None = None, command: list[str] | None = None,
         memory_mb: int = 64, pids: int = 64) -> InstanceSpec:
    return InstanceSpec(space=space, app=app, app_id=abs(hash((space, app))) % 10_000,
                        process="web", index=index, release=1, image=image, command=command,
                        env={"PORT": "8000", **(env or {})}, memory_mb=memory_mb,
                        cpu_millis=250, pids=pids, run_as_uid=10001, tmp_size_mb=16)
