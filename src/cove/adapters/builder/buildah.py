"""Dockerfile builds with buildah, inside limits: memory, CPU, wall clock, output size."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from cove.adapters.builder.archive import extract
from cove.adapters.builder.buildpacks import Buildpack
from cove.adapters.builder.dockerfile import BasePolicy, guard_dockerfile
from cove.adapters.builder.stacks import DEFAULT_STACK, MIRROR, Stack, build_stack
from cove.adapters.engine import Engine
from cove.domain.errors import BuildFailed, Invalid
from cove.ports.builder import BuildLimits, BuiltImage, StackImage

DOCKERFILES = ("Dockerfile", "Containerfile")


PIDS_ROOT = Path("/sys/fs/cgroup/pids")


@contextmanager
def pids_cgroup(name: str, limit: int) -> Iterator[str | None]:
    """A parent cgroup whose pids.max caps every process of one build (fork bombs).

    buildah has no pids limit of its own; with the cgroupfs manager the build's
    containers are created beneath this parent and inherit its cap. None where the
    host does not offer a cgroup v1 pids hierarchy we may write to.
    """
    path = PIDS_ROOT / name
    try:
        path.mkdir(parents=True)
        (path / "pids.max").write_text(str(limit))
    except OSError:
        yield None
        return
    try:
        # The engine removes the parent it is given once a RUN step ends, and would make a
        # fresh one (without the cap) for the next step: hand it a child of the capped one.
        yield f"/{name}/steps"
    finally:
        kill_all(path)
        # The engine may already have removed it along with the build's last container.
        for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if child.is_dir():
                with suppress(FileNotFoundError):
                    child.rmdir()
        with suppress(FileNotFoundError):
            path.rmdir()


def written_by_steps(cgroup: Path, stop_at: int) -> int:
    """Bytes the running RUN steps wrote to their filesystems: the size of each step's
    overlay upper layer, found through a process in the build's cgroup. Counting stops
    at `stop_at` (a step writing millions of files must not make this one slow)."""
    uppers: set[str] = set()
    for procs in cgroup.rglob("cgroup.procs") if cgroup.exists() else ():
        for pid in procs.read_text().split():
            try:
                mounts = Path(f"/proc/{pid}/mountinfo").read_text()
            except OSError:
                continue
            for line in mounts.splitlines():
                fields = line.split()
                if len(fields) > 4 and fields[4] == "/" and " - overlay " in line:
                    found = re.search(r"upperdir=([^,\s]+)", line)
                    if found:
                        uppers.add(found.group(1))
    total = 0
    for upper in uppers:
        for root, _, files in os.walk(upper):
            for name in files:
                with suppress(OSError):
                    total += os.lstat(os.path.join(root, name)).st_blocks * 512
            if total > stop_at:
                return total
    return total


def kill_all(cgroup: Path, timeout: float = 10) -> None:
    """SIGKILL every process left in a cgroup tree (a stopped build's RUN containers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and cgroup.exists():
        pids = {int(p) for f in cgroup.rglob("cgroup.procs") for p in f.read_text().split()}
        if not pids:
            return
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _limit_hit(tail: Iterable[str], limits: BuildLimits) -> str:
    """Name the limit a failed step most likely ran into, from what it printed."""
    text = "\n".join(tail)
    if "exit status 137" in text:  # SIGKILL: the kernel's OOM killer, inside the cgroup
        return f" because a step ran out of memory (the build's limit is {limits.memory_mb} MiB)"
    if "can't fork" in text or "Resource temporarily unavailable" in text:
        return f" because it hit the limit of {limits.pids} processes"
    return ""


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n / 2**10:g} KiB"


class BuildahBuilder:
    def __init__(self, engine: Engine, buildpacks: list[Buildpack] | None = None,
                 binary: str = "buildah", stack: Stack = DEFAULT_STACK,
                 mirror: str = MIRROR, network: Callable[[], str] | None = None,
                 resolve: Callable[[str], str] | None = None,
                 local_images: Iterable[str] = ()) -> None:
        self.engine = engine
        self.network = network
        # Stacks, and whatever else the operator lets builds start from without a registry.
        self.policy = BasePolicy(frozenset({stack.build, stack.run, *local_images}), resolve)
        self.buildpacks = buildpacks or []
        self.binary = binary
        self.stack = stack
        self.mirror = mirror

    def stacks(self) -> list[StackImage]:
        found = []
        for role, image in (("build", self.stack.build), ("run", self.stack.run)):
            proc = self.engine.run("image", "inspect", image, check=False)
            info = json.loads(proc.stdout)[0] if proc.returncode == 0 else None
            found.append(StackImage(role, image, info["Id"][:12], info["Created"][:19],
                                    info["Size"] // 2**20) if info else
                         StackImage(role, image, None))
        return found

    def forget(self, repository: str) -> int:
        listed = self.engine.run("images", "--format", "{{.Repository}}:{{.Tag}}",
                                 check=False)
        tags = [t for t in listed.stdout.split() if t.startswith(f"{repository}:")]
        for tag in tags:  # an image still used elsewhere only loses the tag
            self.engine.run("rmi", tag, check=False)
        return len(tags)

    def build_stacks(self, emit: Callable[[str], None]) -> None:
        build_stack(self.engine, emit, self.stack, self.mirror)

    def unpack(self, archive: BinaryIO, dest: Path) -> int:
        return extract(archive, dest)

    def build(self, source: Path, tag: str, limits: BuildLimits,
              emit: Callable[[str], None], scope: str = "") -> BuiltImage:
        kind, text = self._dockerfile(source, emit)
        guarded = guard_dockerfile(text, scope, self.policy)
        for base in guarded.local_bases:  # local images cannot be pulled from anywhere
            if self.engine.run("image", "exists", base, check=False).returncode != 0:
                raise BuildFailed(f"the stack image {base} is not built yet: a platform "
                                  "admin runs `cove stacks build` (once, a few minutes)")
        with tempfile.TemporaryDirectory(prefix="cove-build-") as work, \
                pids_cgroup(f"cove-builds/{Path(work).name}", limits.pids) as parent:
            iidfile = Path(work) / "iid"
            # Outside the source tree: it is the build context, and what the app's image
            # copies.
            dockerfile = Path(work) / "Dockerfile"
            dockerfile.write_text(guarded.text)
            args = [
                self.binary, "bud", "--layers", "--force-rm", "--isolation", "oci",
                # RUN steps get only the capabilities package installs need (no chroot,
                # mknod, raw sockets, ...), a memory cap without swap and a CPU share.
                "--cap-drop", "SYS_CHROOT,SETPCAP,SETFCAP,MKNOD,AUDIT_WRITE,NET_RAW,KILL,"
                              "NET_BIND_SERVICE",
                "--memory", f"{limits.memory_mb}m", "--memory-swap", f"{limits.memory_mb}m",
                "--cpu-period", "100000", "--cpu-quota", str(limits.cpu_millis * 100),
                "--ulimit", "nofile=4096:4096",
                *(["--cgroup-parent", parent] if parent else []),
                *(["--network", self.network()] if self.network else []),
                "--iidfile", str(iidfile), "-f", str(dockerfile), "-t", tag, str(source),
            ]
            self._run(args, limits, emit, parent)
            image_id = iidfile.read_text().strip().removeprefix("sha256:")
        return BuiltImage(image_id, kind)

    def _dockerfile(self, source: Path, emit: Callable[[str], None]) -> tuple[str, str]:
        """Which builder takes `source`, and the Dockerfile it builds with."""
        found = next((source / n for n in DOCKERFILES if (source / n).is_file()), None)
        if found is not None:
            emit(f"-----> {found.name} detected")
            try:
                return "dockerfile", found.read_text("utf-8")
            except UnicodeDecodeError:
                raise Invalid(f"{found.name} is not UTF-8 text") from None
        pack = next((p for p in self.buildpacks if p.detect(source)), None)
        if pack is None:
            known = ", ".join(["Dockerfile", *(p.name for p in self.buildpacks)])
            raise Invalid(f"cannot tell how to build this source (tried: {known}): add a "
                          "Dockerfile, or an index.html or public/ for a static site")
        emit(f"-----> {pack.name} app detected")
        return pack.name, pack.dockerfile(source)

    def _run(self, args: list[str], limits: BuildLimits, emit: Callable[[str], None],
             cgroup: str | None) -> None:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=self.engine.env, start_new_session=True)
        stopped: list[str] = []

        def kill_builder() -> None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        killer = threading.Timer(15, kill_builder)

        def stop(reason: str) -> None:
            if stopped:
                return
            stopped.append(reason)
            if cgroup is None:
                kill_builder()
                return
            # Killing the RUN step's processes (they are not buildah's children) fails the
            # step: buildah then removes its working containers itself. Killed outright, it
            # would leave them behind; it is, if it has not ended in a while.
            kill_all(PIDS_ROOT / cgroup.strip("/").removesuffix("/steps"))
            killer.start()

        timer = threading.Timer(limits.timeout_seconds,
                                stop, [f"it ran longer than {limits.timeout_seconds}s"])
        timer.start()
        finished = threading.Event()

        def watch_disk() -> None:
            limit = limits.disk_mb * 2**20
            while cgroup and not finished.wait(1.0):
                if written_by_steps(PIDS_ROOT / cgroup.strip("/").removesuffix("/steps"),
                                    limit) > limit:
                    stop(f"a step wrote more than {limits.disk_mb} MiB to disk")
                    return

        threading.Thread(target=watch_disk, daemon=True, name="build-disk").start()
        written = 0
        tail: deque[str] = deque(maxlen=20)
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                if stopped:
                    continue  # drain what buildah says while it cleans up
                written += len(raw)
                if written > limits.max_output_bytes:
                    stop(f"it wrote more than {_size(limits.max_output_bytes)} of output")
                    continue
                line = raw.decode("utf-8", "replace").rstrip("\n")
                tail.append(line)
                emit(line)
            code = proc.wait()
        finally:
            finished.set()
            timer.cancel()
            killer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if stopped:
            raise BuildFailed(f"the build was stopped: {stopped[0]}; the previous release "
                              "keeps serving")
        if code != 0:
            last = next((t for t in reversed(tail) if t.strip()), "no output")
            raise BuildFailed(f"the build failed (exit {code}){_limit_hit(tail, limits)}: "
                              f"{last}; the previous release keeps serving")
