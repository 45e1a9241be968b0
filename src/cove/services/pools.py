"""Which pool runs a space, and the desired state handed to declarative pools."""

from __future__ import annotations

from cove.domain.errors import Forbidden, Invalid, Unsupported
from cove.domain.models import App, Process, Release, Space, User
from cove.domain.template import parse_template
from cove.ports.pool import AppState, Pool, ProcessState, SpaceState
from cove.ports.store import UnitOfWork
from cove.services.context import Context

LOCAL = "local"


def pool_of(ctx: Context, space: Space) -> Pool | None:
    """The declarative pool a space lives on, or None for the local (embedded) pool."""
    name = str(space.template.get("pool", LOCAL))
    return None if name == LOCAL else ctx.pools[name]


def choose_pool(ctx: Context, user: User, requested: str | None) -> str:
    default = ctx.template.pool
    chosen = requested or default
    if chosen != default and not user.is_admin:
        raise Forbidden("only the platform admin can place a space on another pool")
    if chosen != LOCAL and chosen not in ctx.pools:
        known = ", ".join([LOCAL, *sorted(ctx.pools)])
        raise Invalid(f"unknown pool {chosen!r}: this Cove has {known}")
    return chosen


def hostname(ctx: Context, space: Space, app: str) -> str:
    """<app>-<space>.<base domain>, the pool's base domain where it has its own."""
    pool = pool_of(ctx, space)
    if pool is None or not pool.base_domain:
        return ctx.app_hostname(app, space.name)
    return f"{app}-{space.name}.{pool.base_domain}"


def url(ctx: Context, space: Space, app: str) -> str:
    pool = pool_of(ctx, space)
    if pool is None or not pool.base_domain:
        return ctx.app_url(app, space.name)
    return f"http://{hostname(ctx, space, app)}/"


def base_domains(ctx: Context) -> set[str]:
    return {ctx.settings.base_domain} | {p.base_domain for p in ctx.pools.values()
                                         if p.base_domain}


def require(ctx: Context, space: Space, capability: str, what: str) -> Pool:
    """The space's pool if it has an optional capability, else a clear Unsupported."""
    pool = pool_of(ctx, space)
    name = pool.name if pool else LOCAL
    if pool is None or capability not in pool.capabilities:
        raise Unsupported(f"{what} is not supported on the {name!r} pool this space is on")
    return pool


def provision(ctx: Context, uow: UnitOfWork, space: Space) -> None:
    """Create or update the space's runtime side: a network, or a secured namespace."""
    pool = pool_of(ctx, space)
    if pool is None:
        ctx.runtime.ensure_space(space.name)
        return
    members = tuple(sorted((u.name, r) for u, r in uow.memberships.of_space(space.id)))
    pool.provision_space(SpaceState(space.name, parse_template(space.template), members))


def app_state(ctx: Context, space: Space, app: App, release: Release,
              formation: dict[str, Process], domains: list[str]) -> AppState:
    tpl = parse_template(space.template)
    processes = tuple(
        ProcessState(name, release.processes[name], proc.count, tpl.sizes[proc.size],
                     proc.autoscale)
        for name, proc in sorted(formation.items()) if name in release.processes)
    return AppState(
        space=space.name, app=app.name, release=release.version, image=release.image_digest,
        config=dict(release.config), processes=processes,
        hostnames=(hostname(ctx, space, app.name), *domains),
        health_path=app.health_path, health_timeout=app.health_timeout,
        run_as_uid=tpl.security.run_as_uid, tmp_size_mb=tpl.security.tmp_size_mb,
        grace_seconds=ctx.settings.stop_grace_seconds)


def current_state(ctx: Context, uow: UnitOfWork, space: Space, app: App) -> AppState | None:
    if app.release_version is None:
        return None
    release = uow.releases.get(app.id, app.release_version)
    assert release is not None
    return app_state(ctx, space, app, release, app.formation,
                     [d.hostname for d in uow.domains.of_app(app.id)])
