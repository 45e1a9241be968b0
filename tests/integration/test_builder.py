"""Builds must not hurt anyone: runaway builds are stopped, naming the limit they hit."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from cove.adapters.builder.buildah import BuildahBuilder
from cove.adapters.builder.buildpacks import default_buildpacks
from cove.adapters.builder.sandbox import BUILD_UID, ID_RANGE
from cove.adapters.builder.stacks import Stack
from cove.adapters.engine import Engine
from cove.adapters.runtime.local.podman import PodmanRuntime
from cove.adapters.runtime.logs import FileLogs
from cove.domain.errors import BuildFailed, Invalid
from cove.ports.builder import BuildLimits


@pytest.fixture(scope="module")
def engine(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """Every build runs in the build sandbox, whose image comes with the stack; the tests
    share one installation's state (its base images are made available to builds once)."""
    return Engine(tmp_path_factory.mktemp("builder") / "engine")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """The build context: a directory of its own, as every build has."""
    (tmp_path / "src").mkdir()
    return tmp_path / "src"


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """A stopped or failed build leaves no working container behind in the image store,
    and no build sandbox."""
    def containers() -> set[str]:
        listed = subprocess.run(["buildah", "containers", "--quiet"], capture_output=True,
                                text=True, check=True, timeout=60)
        sandboxes = subprocess.run(["podman", "ps", "--all", "--format", "{{.Names}}"],
                                   capture_output=True, text=True, check=True, timeout=60)
        return set(listed.stdout.split()) | {
            name for name in sandboxes.stdout.split() if name.startswith("cove-b")}

    before = containers()
    yield
    assert containers() - before == set()


def build(engine: Engine, source: Path, dockerfile: str,
          **limits: int) -> tuple[list[str], BuildFailed]:
    (source / "Dockerfile").write_text(dockerfile)
    lines: list[str] = []
    base = dockerfile.split()[1]  # a local test image: the operator lets builds use it
    builder = BuildahBuilder(engine, local_images=[base])
    with pytest.raises(BuildFailed) as err:
        builder.build(source, "localhost/cove-test/runaway:1", BuildLimits(**limits),
                      lines.append)
    return lines, err.value


def test_endless_output_is_stopped(busybox_image: str, engine: Engine, source: Path) -> None:
    _, err = build(engine, source, f"FROM {busybox_image}\nRUN yes 'output forever'\n",
                   max_output_bytes=1_000_000)
    assert "it wrote more than 976.562 KiB of output" in err.message


def test_a_step_filling_the_disk_is_stopped(busybox_image: str, engine: Engine,
                                            source: Path) -> None:
    """1 GiB in one RUN step used to succeed in seconds: the build's writes are limited."""
    _, err = build(engine, source, f"FROM {busybox_image}\n"
                   "RUN dd if=/dev/zero of=/fill bs=1M count=1024 && sleep 30\n", disk_mb=64)
    assert "it wrote more than 64 MiB to disk" in err.message


def test_an_endless_loop_is_stopped_at_the_wall_clock(busybox_image: str, engine: Engine,
                                                      source: Path) -> None:
    began = time.monotonic()
    _, err = build(engine, source, f"FROM {busybox_image}\nRUN while true; do :; done\n",
                   timeout_seconds=5)
    assert "ran longer than 5s" in err.message
    assert time.monotonic() - began < 60


def test_a_fork_bomb_hits_the_pids_limit(busybox_image: str, engine: Engine,
                                         source: Path) -> None:
    lines, err = build(engine, source, f"FROM {busybox_image}\nRUN true\n"  # a later step too
                       "RUN i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done; "
                       "wait\n", pids=50, timeout_seconds=60)
    assert "because it hit the limit of 50 processes" in err.message
    assert any("can't fork" in line or "Resource temporarily unavailable" in line
               for line in lines)


def test_a_memory_hog_is_stopped(busybox_image: str, engine: Engine, source: Path) -> None:
    stray = Path.cwd() / "oom"  # the engine's monitor left it where Cove was started
    existed = stray.exists()
    _, err = build(engine, source, f"FROM {busybox_image}\n"
                   "RUN head -c 400000000 /dev/zero | tail -c 400000000 > /dev/null\n",
                   memory_mb=64, timeout_seconds=60)
    assert "because a step ran out of memory (the build's limit is 64 MiB)" in err.message
    assert stray.exists() == existed


def test_buildpack_builds_run_unprivileged_on_a_stack_without_setuid_programs(
        stack: Stack, engine: Engine, source: Path, tmp_path: Path) -> None:
    """Dependency installs run the packages' own scripts: they must not be root, or able
    to become root, while the app's build runs."""
    (source / "package.json").write_text(json.dumps({"scripts": {
        "build": "sh report.sh > report.txt", "start": "node -e 0"}}))
    (source / "report.sh").write_text(
        "echo uid=$(id -u)\n"
        "echo setuid=$(find / -xdev -type f -perm /6000 2>/dev/null | wc -l)\n"
        "touch /etc/owned 2>/dev/null && echo etc=writable || echo etc=refused\n"
        "su -c true root </dev/null 2>/dev/null && echo su=worked || echo su=refused\n")
    builder = BuildahBuilder(engine, default_buildpacks(tmp_path / ".cache", stack))
    tag = "localhost/cove-test/unprivileged:1"
    builder.build(source, tag, BuildLimits(), lambda line: None)
    report = engine.run("run", "--rm", "--entrypoint", "cat", tag, "/app/report.txt").stdout
    assert report.split() == ["uid=10001", "setuid=0", "etc=refused", "su=refused"]


def test_a_build_reaches_neither_the_hosts_services_nor_the_spaces(
        busybox_image: str, engine: Engine, source: Path, tmp_path: Path) -> None:
    runtime = PodmanRuntime(engine, FileLogs(tmp_path / "logs"), "bnet")
    listener = socket.create_server(("0.0.0.0", 0))  # a host service on every address
    port = listener.getsockname()[1]

    def answer() -> None:
        with suppress(OSError):  # until the listener is closed
            while True:
                listener.accept()[0].close()

    threading.Thread(target=answer, daemon=True).start()

    def probe(network: Callable[[], str], label: str) -> list[str]:
        (source / "Dockerfile").write_text(
            f"FROM {busybox_image}\n"
            f"RUN echo {label}; gw=$(ip route | awk '/default/ {{print $3}}'); "
            f"for target in $gw 127.0.0.1; do nc -w 3 $target {port} </dev/null "
            "&& echo reached $target || echo refused $target; done\n")
        lines: list[str] = []
        builder = BuildahBuilder(engine, network=network, local_images=[busybox_image])
        builder.build(source, f"localhost/cove-test/{label}:1", BuildLimits(), lines.append)
        return [line.split()[0] for line in lines if line.startswith(("reached", "refused"))]

    plain = f"cove-test-plain-{tmp_path.name[-8:]}"
    engine.run("network", "create", plain)
    try:
        assert probe(runtime.build_network, "guarded") == ["refused", "refused"]
        # the probe is not blind: on a bridge without the guard the host service answers
        assert probe(lambda: plain, "unguarded") == ["reached", "refused"]
    finally:
        listener.close()
        runtime.remove_everything()
        engine.run("network", "rm", "--force", plain, check=False)


def test_a_missing_stack_says_what_makes_it(source: Path, tmp_path: Path) -> None:
    (source / "requirements.txt").write_text("six\n")
    (source / "app.py").write_text("")
    stack = Stack(build="localhost/cove-test/no-build:1", run="localhost/cove-test/no-run:1")
    builder = BuildahBuilder(Engine(tmp_path / "engine"),
                             default_buildpacks(tmp_path / ".cache", stack), stack=stack)
    with pytest.raises(BuildFailed, match="not built yet: a platform admin runs `cove stacks"):
        builder.build(source, "localhost/cove-test/never:1", BuildLimits(), print)
    (source / "Dockerfile").write_text("FROM localhost/cove-test/nowhere:1 AS base\n"
                                         "FROM base\n")
    with pytest.raises(Invalid, match="base image localhost/cove-test/nowhere:1 is not one"):
        builder.build(source, "localhost/cove-test/never:1", BuildLimits(), print)


def test_root_in_a_build_is_not_the_hosts_root_even_past_the_guard(
        busybox_image: str, engine: Engine, source: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """CVE-2024-1753 on the host's buildah: a bind mount from a stage whose source is a
    symlink to / mounted the host's root, read-write, into a step running as the host's
    root. The guard refuses such mounts; here it is switched off, as a hole in it would be,
    and the step still reaches no host path and is not the host's root."""
    import cove.adapters.builder.buildah as buildah_module
    from cove.adapters.builder.dockerfile import Guarded

    def no_guard(text: str, scope: str, policy: object,
                 alias: Callable[[str], str] = str) -> Guarded:  # bases named, nothing else
        return Guarded(text.replace(busybox_image, alias(busybox_image)),
                       frozenset({busybox_image}), frozenset({busybox_image}))

    monkeypatch.setattr(buildah_module, "guard_dockerfile", no_guard)
    marker = Path("/") / f"cove-escaped-{tmp_path.name}"
    secret = Path("/") / f"cove-host-only-{tmp_path.name}"
    secret.write_text("host")
    (source / "Dockerfile").write_text(
        f"FROM {busybox_image} AS link\nRUN ln -s / /hostroot\n"
        f"FROM {busybox_image}\n"
        "RUN --mount=type=bind,from=link,source=/hostroot,target=/mnt,rw "
        f"echo uid_map $(cat /proc/self/uid_map); touch /mnt{marker} || true; "
        f"cat /mnt{secret} 2>/dev/null && echo saw-a-host-file || true\n")
    lines: list[str] = []
    try:
        BuildahBuilder(engine, local_images=[busybox_image]).build(
            source, "localhost/cove-test/escape:1", BuildLimits(), lines.append)
        assert not marker.exists()
        mapping = next(line.split()[1:] for line in lines if line.startswith("uid_map"))
        assert mapping == ["0", str(BUILD_UID), str(ID_RANGE)]
        assert "saw-a-host-file" not in lines
    finally:
        marker.unlink(missing_ok=True)
        secret.unlink()


def test_built_images_keep_the_owners_their_steps_gave(busybox_image: str, engine: Engine,
                                                        source: Path) -> None:
    """Inside the sandbox root is another uid on the host; the image records the ids the
    steps saw (root's files are root's, a chown to 1000 is 1000), warm or cold."""
    builder = BuildahBuilder(engine, local_images=[busybox_image])
    for round_ in ("cold", "warm"):
        (source / "Dockerfile").write_text(
            f"FROM {busybox_image}\nRUN mkdir /data && touch /data/root && "
            "touch /data/user && chown 1000:1000 /data/user\n"
            f"COPY Dockerfile /data/copied\nRUN touch /data/{round_}\n")
        tag = f"localhost/cove-test/owners:{round_}"
        builder.build(source, tag, BuildLimits(), lambda line: None)
        owners = engine.run("run", "--rm", tag, "stat", "-c", "%n %u:%g",
                            "/data/root", "/data/user", "/data/copied",
                            f"/data/{round_}").stdout.split("\n")
        assert owners[:4] == ["/data/root 0:0", "/data/user 1000:1000", "/data/copied 0:0",
                              f"/data/{round_} 0:0"]


def test_a_missing_sandbox_image_says_what_makes_it(busybox_image: str, engine: Engine,
                                                    source: Path) -> None:
    (source / "Dockerfile").write_text(f"FROM {busybox_image}\nRUN true\n")
    builder = BuildahBuilder(engine, stack=Stack(builder="localhost/cove-test/no-sandbox:1"),
                             local_images=[busybox_image])
    with pytest.raises(BuildFailed, match="sandbox image localhost/cove-test/no-sandbox:1 is "
                                          "not built yet: a platform admin runs `cove stacks"):
        builder.build(source, "localhost/cove-test/never:1", BuildLimits(), print)
