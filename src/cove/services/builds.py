"""Builds: uploaded source -> a sandboxed image build -> a new release of the app."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from cove.domain.builds import FAILED, RUNNING, SUCCEEDED, Build, build_repository
from cove.domain.errors import CoveError, Invalid, NotFound, Unsupported
from cove.domain.events import Event, Result
from cove.domain.models import Space, User, now
from cove.domain.procfile import RELEASE, parse_procfile
from cove.domain.roles import Action
from cove.ports.builder import Builder, BuildLimits
from cove.ports.registry import Destination
from cove.services.access import app_for
from cove.services.context import Context
from cove.services.pools import pool_of
from cove.services.releases import deploy_built_image
from cove.services.spaces import template_of
from cove.services.streams import Emit, in_background

MAX_LOG = 256 * 1024  # the part of a build's output kept with the build


class BuildSlots:
    """At most the space's quota of builds at once; the rest wait their turn. The quota is
    read again while builds wait, so a platform admin's change applies to them too."""

    RECHECK = 2.0  # seconds between looks at the quota while waiting

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running: dict[int, int] = {}

    def try_acquire(self, space_id: int, limit: int) -> bool:
        with self._cond:
            if self._running.get(space_id, 0) >= max(limit, 1):
                return False
            self._running[space_id] = self._running.get(space_id, 0) + 1
            return True

    def acquire(self, space_id: int, limit: Callable[[], int]) -> None:
        with self._cond:
            while self._running.get(space_id, 0) >= max(limit(), 1):
                self._cond.wait(self.RECHECK)
            self._running[space_id] = self._running.get(space_id, 0) + 1

    def release(self, space_id: int) -> None:
        with self._cond:
            self._running[space_id] -= 1
            self._cond.notify_all()


SLOTS = BuildSlots()


def push_source(ctx: Context, user: User, space_name: str, app_name: str,
                archive: BinaryIO) -> Iterator[Event]:
    """Start building the uploaded source and deploying it; return its output as it comes.

    Access and placement are checked before this returns (so they fail as plain errors);
    the last line of the output says how it ended ("==> ... succeeded" / "failed: why").
    """
    builder = ctx.require_builder()
    with ctx.store.unit_of_work() as uow:
        space, app = app_for(uow, user, space_name, app_name, Action.DEPLOY)
        pool = pool_of(ctx, space)
        if not pool.takes_builds:
            raise Unsupported(f"pool {pool.name!r} has no registry for images built from "
                              "source (the operator sets `registry` in the pools file): "
                              "deploy an image instead")
        build = uow.builds.add(app.id, user.name, RUNNING)
        uow.audit.add(space.id, user.name, "build.start", app_name, {"build": build.number})
        uow.commit()
    template = template_of(space)
    destination = pool.registry
    # Cached layers are shared within a space, never beyond it; a space made later under
    # the same name starts with a cache of its own.
    scope = f"{space.name}-{space.id}-{space.created_at.timestamp():.0f}"
    return in_background(lambda emit: _run(
        ctx, builder, user, space, app_name, build, archive, template.builds,
        destination, scope, emit))


def release_label(number: int) -> str:
    """What a build's release names as its image (and how a restart finds it)."""
    return f"build {number}"


INTERRUPTED = ("interrupted: the Cove server stopped while it ran (nothing of it was "
               "released); push again")


def fail_interrupted(ctx: Context) -> int:
    """At start: builds the previous server process left running ended with it (their
    sandboxes go too: a build nobody waits for must not hold a slot's resources). One
    whose release was recorded before the server stopped succeeded; the others failed.
    How many failed."""
    if ctx.builder is not None:
        ctx.builder.remove_interrupted()
    failed = 0
    with ctx.store.unit_of_work() as uow:
        for build in uow.builds.running():
            released = [r.version for r in uow.releases.of_app(build.app_id)
                        if r.image == release_label(build.number)]
            if released:
                build.status, build.release_version = SUCCEEDED, released[0]
            else:
                build.status, build.error = FAILED, INTERRUPTED
                failed += 1
            build.finished_at = now()
            uow.builds.save(build)
        uow.commit()
    return failed


def _builds_quota(ctx: Context, space_id: int) -> int:
    with ctx.store.unit_of_work() as uow:
        space = uow.spaces.get(space_id)
        return template_of(space).quota.builds if space else 1


def _run(ctx: Context, builder: Builder, user: User, space: Space, app_name: str,
         build: Build, archive: BinaryIO, limits: BuildLimits,
         destination: Destination | None, scope: str, output: Emit) -> Result:
    space_name = space.name
    log: list[str] = []
    kept = 0  # characters in `log`: a running total, not a sum per line

    def emit(line: str) -> None:
        nonlocal kept
        if kept < MAX_LOG:
            log.append(line)
            kept += len(line) + 1
        output(line)

    try:
        if not SLOTS.try_acquire(space.id, _builds_quota(ctx, space.id)):
            emit("-----> waiting for a build slot (the space's quota of builds at once)")
            SLOTS.acquire(space.id, lambda: _builds_quota(ctx, space.id))
        try:
            with tempfile.TemporaryDirectory(prefix="cove-src-") as work:
                source = Path(work) / "src"
                source.mkdir()
                count = builder.unpack(archive, source)
                emit(f"-----> received {count} files")
                processes = _processes(source, emit)
                emit(f"-----> build {build.number}: building the image (limits: "
                     f"{limits.memory_mb} MiB memory, {limits.cpu_millis} millicores, "
                     f"{limits.pids} processes, {limits.timeout_seconds} s, "
                     f"{limits.max_output_bytes // 1024} KiB of output, "
                     f"{limits.disk_mb} MiB written by the build)")
                tag = f"{build_repository(space_name, app_name)}:build-{build.number}"
                built = builder.build(source, tag, limits, emit, scope=scope)
                build.builder, build.image = built.builder, built.image
        finally:
            SLOTS.release(space.id)
        image = built.image
        if destination is not None:  # a pool's nodes pull it from the pool's registry
            push, pull = destination.repository(space_name, app_name)
            emit(f"-----> pushing the image to {push}")
            digest = ctx.resolver.publish(built.image, f"{push}:build-{build.number}")
            image = f"{pull}@{digest}"
        emit(f"-----> releasing build {build.number}")
        release = deploy_built_image(ctx, user, space_name, app_name,
                                     release_label(build.number), image, processes,
                                     f"Build {build.number} ({built.builder})")
        build.status, build.release_version = SUCCEEDED, release.version
        message = f"build {build.number} succeeded: released v{release.version}"
    except CoveError as err:
        build.status, build.error = FAILED, err.message
        message = f"build {build.number} failed: {err.message}"
    except Exception as err:  # keep the record honest whatever went wrong
        build.status, build.error = FAILED, f"internal error: {err}"
        message = f"build {build.number} failed: internal error"
    emit(f"==> {message}")
    try:
        return Result(build.status, message, build.number, build.release_version)
    finally:
        build.log, build.finished_at = "\n".join(log), now()
        with ctx.store.unit_of_work() as uow:
            uow.builds.save(build)
            uow.commit()


def _processes(source: Path, emit: Callable[[str], None]) -> dict[str, list[str] | None]:
    procfile = source / "Procfile"
    if not procfile.is_file():
        return {"web": None}  # the image's own command
    try:
        declared = parse_procfile(procfile.read_text())
    except UnicodeDecodeError:
        raise Invalid("Procfile is not UTF-8 text") from None
    if RELEASE in declared:
        emit("-----> release command: runs once before each new release takes traffic")
    if not set(declared) - {RELEASE}:
        raise Invalid("Procfile declares only a release command: add a web or worker type")
    return dict(declared)


def list_builds(ctx: Context, user: User, space_name: str, app_name: str) -> list[Build]:
    with ctx.store.unit_of_work() as uow:
        _, app = app_for(uow, user, space_name, app_name, Action.READ)
        return uow.builds.of_app(app.id)


def build_log(ctx: Context, user: User, space_name: str, app_name: str, number: int) -> str:
    with ctx.store.unit_of_work() as uow:
        _, app = app_for(uow, user, space_name, app_name, Action.DEPLOY)
        build = uow.builds.get(app.id, number)
    if build is None:
        raise NotFound(f"app {app_name!r} has no build {number}: `cove builds {app_name}`")
    return build.log
