"""Shared set-up for benchmarks: the example image and a podman runtime of their own."""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
from tests.support.apps import GIT_ENV
from tests.support.cove import CoveServer, make_server
from tests.support.services import (
    Registry,
    build_hello_image,
    hello_binary_path,
    push,
    start_registry,
)

from cove.adapters.engine import Engine
from cove.adapters.runtime.local.podman import PodmanRuntime
from cove.adapters.runtime.logs import FileLogs
from cove.ports.runtime import InstanceSpec

IMAGE = "localhost/cove-bench/hello:latest"
# A server as it runs by default (the tests' servers reconcile every half second, which
# keeps the engine busier than a real one).
DEFAULT_INTERVALS = {"COVE_RECONCILE_INTERVAL": "2", "COVE_POOL_RECONCILE_INTERVAL": "30"}


def bench_server(root: Path, **extra: str) -> CoveServer:
    return make_server(root, **{**DEFAULT_INTERVALS, **extra})


def prepare() -> tuple[PodmanRuntime, Path]:
    build_hello_image(IMAGE)
    work = Path(tempfile.mkdtemp(prefix="cove-bench-"))
    runtime = PodmanRuntime(Engine(work / "engine"), FileLogs(work / "logs"),
                            install=secrets.token_hex(3), grace_seconds=2)
    return runtime, work


def example_in_a_registry(root: Path) -> tuple[Registry, str]:
    """The example image built and pushed to a registry of its own, started under `root`:
    the registry and the image's reference there."""
    build_hello_image(IMAGE)
    registry = start_registry(root / "registry")
    image = f"{registry.host}/examples/hello:1"
    push(IMAGE, image)
    return registry, image


def spec(index: int, space: str = "bench", memory_mb: int = 128) -> InstanceSpec:
    return InstanceSpec(space=space, app="hello", app_id=1, process="web", index=index,
                        release=1, image=IMAGE, command=None, env={"PORT": "8000"},
                        memory_mb=memory_mb, cpu_millis=500, pids=128, run_as_uid=10001,
                        tmp_size_mb=16)


def timed_push(work: Path, remote: str, refspec: str, url: str, headers: dict[str, str],
               answer: str, within: float = 900) -> float:
    """Seconds from `git push` of `work` to `url` answering with `answer`. The new version
    may answer before the push returns (the old one drains meanwhile)."""
    began = time.perf_counter()
    push = subprocess.Popen(["git", "push", "-q", "--force", remote, refspec], cwd=work,
                            env=dict(os.environ, **GIT_ENV), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    while True:
        with suppress(httpx.HTTPError):
            if answer in httpx.get(url, headers=headers, timeout=5).text:
                break
        if push.poll() not in (None, 0):
            raise RuntimeError(f"git push failed: {push.communicate()[1]}")
        if time.perf_counter() - began > within:
            raise TimeoutError(f"{url} never answered with {answer}")
        time.sleep(0.05)
    live = time.perf_counter() - began
    if push.wait() != 0:
        raise RuntimeError(f"git push failed: {push.communicate()[1]}")
    return live


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median": round(statistics.median(ordered), 4), "min": round(ordered[0], 4),
            "max": round(ordered[-1], 4), "n": len(ordered)}


def emit(name: str, data: dict[str, Any]) -> None:
    json.dump({"benchmark": name, **data}, sys.stdout, indent=2)
    sys.stdout.write("\n")


__all__ = ["IMAGE", "bench_server", "emit", "example_in_a_registry", "hello_binary_path",
           "prepare", "spec", "summary", "timed_push"]
