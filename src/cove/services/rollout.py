"""Turning a release into running, healthy instances, and tearing them down."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from cove.domain.builds import build_repository
from cove.domain.errors import DeployFailed
from cove.domain.models import App, Process, Release
from cove.domain.procfile import RELEASE
from cove.domain.template import SpaceTemplate
from cove.ports.runtime import Instance, InstanceSpec
from cove.services.context import Context

WEB = "web"


def specs_for(ctx: Context, space: str, template: SpaceTemplate, app: App, release: Release,
              formation: dict[str, Process]) -> list[InstanceSpec]:
    """The instances a release with this formation should have, in a stable order."""
    specs = []
    for process, proc in sorted(formation.items()):
        if process not in release.processes:
            continue
        size = template.sizes[proc.size]
        env = dict(release.config)
        env.update({"PORT": "8000", "APP_NAME": app.name, "COVE_SPACE": space,
                    "COVE_RELEASE": f"v{release.version}", "COVE_PROCESS": process})
        for index in range(1, proc.count + 1):
            specs.append(InstanceSpec(
                space=space, app=app.name, app_id=app.id, process=process, index=index,
                release=release.version, image=release.image_digest,
                command=release.processes[process], env=env, memory_mb=size.memory_mb,
                cpu_millis=size.cpu_millis, pids=size.pids,
                run_as_uid=template.security.run_as_uid,
                tmp_size_mb=template.security.tmp_size_mb))
    return specs


def run_release_command(ctx: Context, space: str, template: SpaceTemplate, app: App,
                        release: Release, timeout: float = 600) -> None:
    """Run the release's `release:` command once, with its image and config; it must succeed."""
    command = release.processes.get(RELEASE)
    if not command:
        return
    size = template.sizes[template.default_size]
    env = dict(release.config)
    env.update({"APP_NAME": app.name, "COVE_SPACE": space,
                "COVE_RELEASE": f"v{release.version}", "COVE_PROCESS": RELEASE})
    spec = InstanceSpec(space=space, app=app.name, app_id=app.id, process=RELEASE, index=1,
                        release=release.version, image=release.image_digest, command=command,
                        env=env, memory_mb=size.memory_mb, cpu_millis=size.cpu_millis,
                        pids=size.pids, run_as_uid=template.security.run_as_uid,
                        tmp_size_mb=template.security.tmp_size_mb)
    ctx.logs.record(app.id, f"running the release command of v{release.version}")
    code, output = ctx.runtime.run_once(spec, timeout)
    if code != 0:
        last = next((line for line in reversed(output.splitlines()) if line.strip()),
                    "no output")
        raise DeployFailed(f"the release command failed (exit {code}): {last}; the previous "
                           "release keeps serving")


def mark_ready(ctx: Context, name: str, ready: bool = True) -> None:
    with ctx.ready_lock:
        if ready:
            ctx.ready.add(name)
        else:
            ctx.ready.discard(name)


def start_healthy(ctx: Context, specs: list[InstanceSpec], app: App) -> list[Instance]:
    """Start every spec; web instances must pass the health check within the app's timeout.

    On any failure every instance started here is stopped again and DeployFailed says why,
    so nothing half-deployed stays behind.
    """
    started: list[Instance] = []
    try:
        for spec in specs:
            started.append(ctx.runtime.start(spec))
        with ThreadPoolExecutor(max_workers=8) as pool:
            checks = {inst.name: pool.submit(_check, ctx, inst, app) for inst in started}
            failures = {name: f.result() for name, f in checks.items() if f.result()}
        if failures:
            name, reason = next(iter(failures.items()))
            raise DeployFailed(
                f"instance {name} never became healthy: {reason}. The previous release keeps "
                f"serving; check `cove logs {app.name}`, the app must answer HTTP on $PORT at "
                f"{app.health_path}")
    except BaseException:
        stop_all(ctx, [i.name for i in started])
        raise
    for inst in started:
        mark_ready(ctx, inst.name)
    return started


def _check(ctx: Context, inst: Instance, app: App) -> str | None:
    if inst.process != WEB:
        return None
    if inst.address is None:
        return "it has no network address (did it exit at once?)"
    return ctx.health.wait_healthy(inst.address, app.health_path, app.health_timeout)


def stop_all(ctx: Context, names: list[str]) -> None:
    for name in names:
        mark_ready(ctx, name, False)
    if not names:
        return
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: ctx.runtime.stop(n, ctx.settings.stop_grace_seconds), names))


def teardown_app(ctx: Context, app: App) -> None:
    """Stop everything an app runs and forget its logs (the caller deletes the rows)."""
    with ctx.locks.hold(app.id):
        stop_all(ctx, [i.name for i in ctx.runtime.instances(app.id)])
    ctx.logs.forget(app.id)


def forget_app(ctx: Context, space: str, app: App, local: bool) -> None:
    """Everything of a destroyed app outside the store: its instances (on the local pool),
    logs, git repository and built images."""
    if local:
        teardown_app(ctx, app)
    if ctx.repos is not None:
        ctx.repos.remove(space, app.name)
    if ctx.builder is not None:
        ctx.builder.forget(build_repository(space, app.name))
