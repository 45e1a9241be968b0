"""Session fixtures shared by integration and end-to-end tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.adapters.builder.stacks import Stack
from tests.support.cove import CoveServer, make_server
from tests.support.k8s import ControlPlane, start_control_plane
from tests.support.services import (
    Postgres,
    Registry,
    build_hello_image,
    push,
    run,
    start_postgres,
    start_registry,
    write_htpasswd,
)

HELLO_TAG = "localhost/cove-test/hello:latest"
BUSYBOX = "localhost/cove-test/busybox:latest"


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    # Under /tmp (not pytest's tmp_path): the postgres user must be able to reach it.
    path = Path(tempfile.mkdtemp(prefix="cove-tests-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)  # build stores hold gigabytes


@pytest.fixture(scope="session", autouse=True)
def build_bases(workdir: Path) -> Path:
    """One store of builds' base images for every Cove the tests start (the stacks are
    made available to builds once, not once per server)."""
    path = workdir / "build-bases"
    os.environ["COVE_BUILD_BASES"] = str(path)
    return path


@pytest.fixture(scope="session")
def hello_image() -> str:
    """The example app built into a local image (containers-storage)."""
    build_hello_image(HELLO_TAG)
    return HELLO_TAG


@pytest.fixture(scope="session")
def registry(workdir: Path, hello_image: str) -> Iterator[Registry]:
    reg = start_registry(workdir / "registry")
    push(hello_image, f"{reg.host}/examples/hello:1")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def busybox_ref(registry: Registry, busybox_image: str) -> str:
    """busybox in the test registry: what a tenant's Dockerfile may start from."""
    ref = f"{registry.host}/cove-test/busybox:1"
    push(busybox_image, ref)
    return ref


PRIVATE_CREDS = ("deployer", "s3cret-pass")


@pytest.fixture(scope="session")
def private_registry(workdir: Path, hello_image: str) -> Iterator[Registry]:
    """A registry that wants basic auth (htpasswd) for every pull and push."""
    htpasswd = workdir / "htpasswd"
    write_htpasswd(htpasswd, *PRIVATE_CREDS)
    reg = start_registry(workdir / "private-registry", htpasswd)
    push(hello_image, f"{reg.host}/team/hello:1", creds=":".join(PRIVATE_CREDS))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def postgres(workdir: Path) -> Iterator[Postgres]:
    pg = start_postgres(workdir / "postgres")
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def control_plane(workdir: Path) -> Iterator[ControlPlane]:
    """etcd, kube-apiserver, controller-manager, scheduler and kwok, once per session."""
    plane = start_control_plane(workdir / "k8s")
    yield plane
    plane.down()


@pytest.fixture(scope="session")
def busybox_image() -> str:
    """A base image with a shell: Debian's static busybox on an empty base."""
    container = run("buildah", "from", "scratch").stdout.strip()
    try:
        run("buildah", "copy", container, shutil.which("busybox") or "/bin/busybox",
            "/bin/busybox")
        run("buildah", "run", "--isolation", "chroot", container, "/bin/busybox",
            "--install", "-s", "/bin")
        run("buildah", "commit", "--quiet", container, BUSYBOX)
    finally:
        run("buildah", "rm", container)
    return BUSYBOX


@pytest.fixture(scope="session")
def stack(workdir: Path) -> Stack:
    """The Debian build and run images the buildpacks use, and the build sandbox's image
    (~3 minutes the first time)."""
    from cove.adapters.builder.stacks import build_stack, stack_exists
    from cove.adapters.engine import Engine

    engine = Engine(workdir / "stack-engine")
    if not stack_exists(engine):
        build_stack(engine, emit=lambda line: None, only_missing=True)
    return Stack()


@pytest.fixture(scope="session")
def cove(workdir: Path, registry: Registry, private_registry: Registry,
         stack: Stack) -> Iterator[CoveServer]:
    """One Cove with the embedded defaults for the end-to-end and security suites."""
    server = make_server(workdir / "e2e")
    server.start()
    yield server
    server.teardown()
