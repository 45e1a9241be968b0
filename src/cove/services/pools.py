"""Which pool runs a space, and the desired state handed to declarative pools."""

from __future__ import annotations

from cove.domain.errors import Forbidden, Invalid, Unsupported
from cove.domain.models import App, Process, Release, Space, User
from cove.domain.procfile import RELEASE
from cove.domain.template import parse_template
from cove.ports.pool import AppState, Pool, ProcessState, SpaceState
from cove.ports.store import UnitOfWork
from cove.services.context import Context, space_lock

LOCAL = "local"


def pool_of(ctx: Context, space: Space) -> Pool:
    """The pool a space lives on: the embedded one ("local") or one of the pools file."""
    return ctx.pools[str(space.template.get("pool", LOCAL))]


def choose_pool(ctx: Context, user: User, requested: str | None) -> str:
    default = ctx.template.pool
    chosen = requested or default
    if chosen != default and not user.is_admin:
        raise Forbidden("only the platform admin can place a space on another pool")
    if chosen not in ctx.pools:
        known = ", ".join(sorted(ctx.pools))
        raise Invalid(f"unknown pool {chosen!r}: this Cove has {known}")
    return chosen


def hostname(ctx: Context, space: Space, app: str) -> str:
    """<app>-<space>.<base domain>, the pool's base domain where it has its own."""
    pool = pool_of(ctx, space)
    if not pool.base_domain:
        return ctx.app_hostname(app, space.name)
    return f"{app}-{space.name}.{pool.base_domain}"


def url(ctx: Context, space: Space, app: str) -> str:
    pool = pool_of(ctx, space)
    if not pool.base_domain:
        return ctx.app_url(app, space.name)
    return f"http://{hostname(ctx, space, app)}/"


def base_domains(ctx: Context) -> set[str]:
    return {ctx.settings.base_domain} | {p.base_domain for p in ctx.pools.values()
                                         if p.base_domain}


def unsupported(pool: Pool, what: str) -> Unsupported:
    """The error for a feature the pool lacks (a capability it does not implement)."""
    return Unsupported(f"{what} is not supported on the {pool.name!r} pool this space is on")


def space_state(uow: UnitOfWork, space: Space) -> SpaceState:
    members = tuple(sorted((u.name, r) for u, r in uow.memberships.of_space(space.id)))
    return SpaceState(space.name, parse_template(space.template), members)


def provision_and_commit(ctx: Context, uow: UnitOfWork, space: Space) -> None:
    """Create or update the space's side in its pool (a network, or a secured namespace),
    then commit. The space's lock is held until the commit: a reconcile pass holds it from
    reading a space's state to applying it, so neither applies an older state over the
    other's (a demoted member's old role coming back)."""
    with ctx.locks.hold(space_lock(space.id)):
        pool_of(ctx, space).provision_space(space_state(uow, space))
        uow.commit()


def app_state(ctx: Context, space: Space, app: App, release: Release,
              formation: dict[str, Process], domains: list[str]) -> AppState:
    tpl = parse_template(space.template)
    processes = tuple(
        ProcessState(name, release.processes[name], proc.count, tpl.sizes[proc.size],
                     proc.autoscale)
        for name, proc in sorted(formation.items()) if name in release.processes)
    command = release.processes.get(RELEASE)
    once = ProcessState(RELEASE, command, 1, tpl.sizes[tpl.default_size]) if command else None
    return AppState(
        space=space.name, app=app.name, release=release.version, image=release.image_digest,
        config=dict(release.config), processes=processes,
        hostnames=(hostname(ctx, space, app.name), *domains),
        health_path=app.health_path, health_timeout=app.health_timeout,
        run_as_uid=tpl.security.run_as_uid, tmp_size_mb=tpl.security.tmp_size_mb,
        grace_seconds=ctx.settings.stop_grace_seconds, app_id=app.id, release_command=once)


def current_state(ctx: Context, uow: UnitOfWork, space: Space, app: App) -> AppState | None:
    if app.release_version is None:
        return None
    release = uow.releases.get(app.id, app.release_version)
    assert release is not None
    return app_state(ctx, space, app, release, app.formation,
                     [d.hostname for d in uow.domains.of_app(app.id)])
