"""Builds with buildah, in the build sandbox, inside limits: memory, CPU, processes, wall
clock, disk and output size."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from cove.adapters.builder import fastpath
from cove.adapters.builder.archive import extract
from cove.adapters.builder.buildpacks import Buildpack
from cove.adapters.builder.dockerfile import BasePolicy, guard_dockerfile
from cove.adapters.builder.sandbox import IMAGES, Sandbox
from cove.adapters.builder.stacks import DEFAULT_STACK, MIRROR, Stack, build_stack
from cove.adapters.engine import Engine
from cove.domain.errors import BuildFailed, Invalid
from cove.ports.builder import BuildLimits, BuiltImage, StackImage

DOCKERFILES = ("Dockerfile", "Containerfile")
# What buildah says inside the sandbox that is not about the build (it has no syslog).
SANDBOX_NOISE = frozenset({"failed to connect to syslog: Initialization"})
# A space's build cache is dropped once it holds this many times the build disk limit.
CACHE_FACTOR = 4


def _limit_hit(tail: Iterable[str], limits: BuildLimits) -> str:
    """Name the limit a failed step most likely ran into, from what it printed."""
    text = "\n".join(tail)
    if "status 137" in text:  # SIGKILL: the kernel's OOM killer, inside the cgroup
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
                 local_images: Iterable[str] = (), bases: Path | None = None) -> None:
        self.engine = engine
        self.sandbox = Sandbox(engine, engine.state_dir / "builds", stack.builder, network,
                               bases=bases)
        # Stacks, and whatever else the operator lets builds start from without a registry.
        self.policy = BasePolicy(frozenset({stack.build, stack.run, *local_images}), resolve)
        self.buildpacks = buildpacks or []
        self.binary = binary
        self.stack = stack
        self.mirror = mirror

    def stacks(self) -> list[StackImage]:
        found = []
        for role, image in (("build", self.stack.build), ("run", self.stack.run),
                            ("sandbox", self.stack.builder)):
            proc = self.engine.run("image", "inspect", image, check=False)
            info = json.loads(proc.stdout)[0] if proc.returncode == 0 else None
            found.append(StackImage(role, image, info["Id"][:12], info["Created"][:19],
                                    info["Size"] // 2**20) if info else
                         StackImage(role, image, None))
        return found

    def forget(self, repository: str) -> int:
        self._record(repository).unlink(missing_ok=True)
        # Only the app's repository: listing every image of a store that holds many
        # takes seconds.
        listed = self.engine.run("images", "--format", "{{.Repository}}:{{.Tag}}",
                                 "--filter", f"reference={repository}", check=False)
        tags = [t for t in listed.stdout.split() if t.startswith(f"{repository}:")]
        for tag in tags:  # an image still used elsewhere only loses the tag
            self.engine.run("rmi", tag, check=False)
        return len(tags)

    def build_stacks(self, emit: Callable[[str], None]) -> None:
        build_stack(self.engine, emit, self.stack, self.mirror)

    def remove_interrupted(self) -> int:
        return self.sandbox.remove_interrupted()

    def unpack(self, archive: BinaryIO, dest: Path) -> int:
        return extract(archive, dest)

    def build(self, source: Path, tag: str, limits: BuildLimits,
              emit: Callable[[str], None], scope: str = "") -> BuiltImage:
        kind, text = self._dockerfile(source, emit)
        # Each base looked up once per build; the local ones builds may use (the stacks)
        # all at once, the guard asks for the others as it reads the FROM lines.
        ids: dict[str, str | None] = dict(self.sandbox.host_ids(set(self.policy.local)))

        def alias(ref: str) -> str:
            if ref not in ids:
                ids[ref] = self.sandbox.host_id(ref)
            found = ids[ref]
            return self.sandbox.base_name(found) if found else ref

        guarded = guard_dockerfile(text, scope, self.policy, alias=alias)
        for base in guarded.local_bases:  # local images cannot be pulled from anywhere
            if not ids.get(base):
                raise BuildFailed(f"the stack image {base} is not built yet: a platform "
                                  "admin runs `cove stacks build` (once, a few minutes)")
        missing = sorted(b for b in guarded.bases if not ids.get(b))
        if missing:
            raise BuildFailed(f"the base image {missing[0]} is not in this machine's image "
                              "store")
        try:
            plan: fastpath.Plan | None = fastpath.plan(guarded.text, source)
        except fastpath.NotEligible:
            plan = None
        if plan is not None:
            image_id = self._code_only(plan, source, tag, emit)
            if image_id is not None:
                return BuiltImage(image_id, kind)
        self.sandbox.sync_bases({str(ids[b]): b for b in guarded.bases}, emit)
        self.sandbox.hand_over(source)
        cap = CACHE_FACTOR * limits.disk_mb * 2**20
        added = 0
        try:
            with self.sandbox.bases_lock.hold(exclusive=False), \
                    self.sandbox.space_lock(scope).shared(), \
                    tempfile.TemporaryDirectory(prefix="cove-build-",
                                                dir=self.sandbox.home) as work:
                os.chmod(work, 0o755)
                # Outside the source tree: it is the build context, and what the app's
                # image copies.
                (Path(work) / "in").mkdir()
                (Path(work) / "in" / "Dockerfile").write_text(guarded.text)
                name = Path(work).name  # what a restart finds: see remove_interrupted
                command = self.sandbox.build_command(
                    name, scope, Path(work), source, tag, limits.memory_mb,
                    limits.cpu_millis, limits.pids)
                before = self.sandbox.layers(scope)
                try:
                    self._run(command, name, scope, before, Path(work), limits, emit)
                finally:  # the sandbox removes itself (--rm)
                    added = self.sandbox.written(scope, before, cap)
                try:
                    layout = self.sandbox.handed_over(Path(work), scope)
                    image_id = self.sandbox.import_image(layout, tag)
                    self._remember(tag, plan, layout)
                finally:  # (what the build wrote there: its blobs stay for the next)
                    shutil.rmtree(self.sandbox.space_store(scope) / IMAGES / name,
                                  ignore_errors=True)
        finally:
            self.sandbox.account(scope, added, cap)  # outside the space's lock: it may wipe
        return BuiltImage(image_id, kind)

    # -- code-only changes (see fastpath) ---------------------------------------------------

    def _record(self, repository: str) -> Path:
        """What the app's last build leaves for a code-only change (`repository`: the
        app's images, a tag without its `:build-N`)."""
        return self.sandbox.home / "code-only" / \
            f"{hashlib.sha256(repository.encode()).hexdigest()[:32]}.json"

    def _remember(self, tag: str, plan: fastpath.Plan | None, layout: Path) -> None:
        record = self._record(tag.rsplit(":", 1)[0])
        image = fastpath.read_image(layout)
        if plan is None or not fastpath.ends_with_source(image):
            record.unlink(missing_ok=True)
            return
        record.parent.mkdir(exist_ok=True)
        partial = record.with_suffix(f".{threading.get_ident()}")
        partial.write_text(json.dumps({"key": plan.key, **image}))
        partial.replace(record)

    def _code_only(self, plan: fastpath.Plan, source: Path, tag: str,
                   emit: Callable[[str], None]) -> str | None:
        """The image of a code-only change without a build (None: build it)."""
        try:
            last = json.loads(self._record(tag.rsplit(":", 1)[0]).read_text())
        except (OSError, ValueError):
            return None
        if last.get("key") != plan.key or not fastpath.ends_with_source(last):
            return None
        with tempfile.TemporaryDirectory(prefix="cove-code-", dir=self.sandbox.home) as work:
            layer, layout = Path(work) / "layer.tar", Path(work) / "out" / "image"
            try:
                digest, size = fastpath.write_layer(source, layer, plan.uid, plan.gid)
            except fastpath.NotEligible as why:
                emit(f"-----> building: {why}")
                return None
            made = fastpath.write_image(layout, last, layer, digest, size)
            try:
                image_id = self.sandbox.import_image(layout, tag, made)
            except BuildFailed:  # a layer it reuses is no longer stored
                return None
            self._remember(tag, plan, layout)
        emit("-----> only the code changed since the last build: its dependency layers are "
             "reused and the code is stored as a new layer (no build step runs)")
        return image_id

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

    def _run(self, args: list[str], name: str, scope: str, before: set[str], work: Path,
             limits: BuildLimits, emit: Callable[[str], None]) -> None:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=work,
                                env=self.engine.env, start_new_session=True)
        stopped: list[str] = []

        def stop(reason: str) -> None:
            if not stopped:
                stopped.append(reason)
                self.sandbox.remove(name)  # kills it

        timer = threading.Timer(limits.timeout_seconds,
                                stop, [f"it ran longer than {limits.timeout_seconds}s"])
        timer.start()
        finished = threading.Event()

        def watch_disk() -> None:
            limit = limits.disk_mb * 2**20
            while not finished.wait(1.0):
                if self.sandbox.written(scope, before, limit, work) > limit:
                    stop(f"it wrote more than {limits.disk_mb} MiB to disk")
                    return

        threading.Thread(target=watch_disk, daemon=True, name="build-disk").start()
        written = 0
        tail: deque[str] = deque(maxlen=20)
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                if stopped:
                    continue  # drain what the sandbox says while it ends
                written += len(raw)
                if written > limits.max_output_bytes:
                    stop(f"it wrote more than {_size(limits.max_output_bytes)} of output")
                    continue
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if line in SANDBOX_NOISE:
                    continue
                tail.append(line)
                emit(line)
            code = proc.wait()
        finally:
            finished.set()
            timer.cancel()
            if proc.poll() is None:
                self.sandbox.remove(name)
                proc.kill()
                proc.wait()
        if stopped:
            raise BuildFailed(f"the build was stopped: {stopped[0]}; the previous release "
                              "keeps serving")
        if code == 125 and any("image not known" in line for line in tail):
            raise BuildFailed(f"the build sandbox image {self.stack.builder} is not built "
                              "yet: a platform admin runs `cove stacks build`")
        if code != 0:
            # 137: the sandbox itself was killed, by the kernel's OOM killer (Cove's own
            # stops are reported above).
            hit = (f" because a step ran out of memory (the build's limit is "
                   f"{limits.memory_mb} MiB)" if code == 137 else _limit_hit(tail, limits))
            last = next((t for t in reversed(tail) if t.strip()), "no output")
            raise BuildFailed(f"the build failed (exit {code}){hit}: "
                              f"{last}; the previous release keeps serving")
