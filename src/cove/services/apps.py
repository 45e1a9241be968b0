"""Apps: create, inspect, destroy, health settings and custom domains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cove.domain.errors import Conflict, Invalid, NotFound, RouteRefused
from cove.domain.models import App, DomainName, Release, Space, User
from cove.domain.names import check_hostname, check_name, check_routable
from cove.domain.procfile import RELEASE, process_types
from cove.domain.quota import Usage, check_fits
from cove.domain.roles import Action
from cove.ports.runtime import Instance
from cove.ports.store import UnitOfWork
from cove.services.access import app_for, space_for
from cove.services.context import Context
from cove.services.forget import forget_app
from cove.services.pools import base_domains, current_state, pool_of, url
from cove.services.spaces import template_of, usage_of

MAX_HEALTH_TIMEOUT = 600


def _check_health(path: str | None, timeout: int | None) -> None:
    if path is not None and (not path.startswith("/") or len(path) > 255 or " " in path):
        raise Invalid("health check path must start with / and contain no spaces")
    if timeout is not None and not 1 <= timeout <= MAX_HEALTH_TIMEOUT:
        raise Invalid(f"health check timeout must be 1-{MAX_HEALTH_TIMEOUT} seconds")


def _check_address_is_free(uow: UnitOfWork, app: str, space: str) -> None:
    """`<app>-<space>` must name one app only: app my in space shop-alice and app my-shop in
    space alice would share my-shop-alice.<domain>, and the later one would take the
    earlier one's traffic. Every other way to split the address is looked up."""
    address = f"{app}-{space}"
    for cut in (i for i, char in enumerate(address) if char == "-"):
        other_app, other_space = address[:cut], address[cut + 1:]
        if (other_app, other_space) == (app, space):
            continue
        found = uow.spaces.by_name(other_space)
        if found is not None and uow.apps.get(found.id, other_app) is not None:
            raise Conflict(f"the address {address} is taken by another space's app: choose "
                           "another app name")


def create_app(ctx: Context, user: User, space_name: str, name: str,
               health_path: str | None = None, health_timeout: int | None = None) -> App:
    check_name("app", name)
    _check_health(health_path, health_timeout)
    with ctx.store.unit_of_work() as uow:
        space, _ = space_for(uow, user, space_name, Action.DEPLOY)
    with ctx.names_lock, ctx.quota.hold(space.id) as reserved, \
            ctx.store.unit_of_work() as uow:
        space, _ = space_for(uow, user, space_name, Action.DEPLOY)
        if uow.apps.get(space.id, name):
            raise Conflict(f"an app named {name!r} already exists in space {space_name!r}")
        _check_address_is_free(uow, name, space.name)
        check_fits(template_of(space).quota, usage_of(uow, space) + reserved + Usage(apps=1),
                   f"creating app {name!r}")
        app = uow.apps.add(App(0, space.id, name, health_path=health_path or "/",
                               health_timeout=health_timeout or 30))
        uow.audit.add(space.id, user.name, "app.create", name, {})
        if ctx.repos is not None:
            ctx.repos.ensure(space.name, name)
        uow.commit()
    return app


def update_app(ctx: Context, user: User, space_name: str, name: str,
               health_path: str | None = None, health_timeout: int | None = None) -> App:
    _check_health(health_path, health_timeout)
    with ctx.store.unit_of_work() as uow:
        space, app = app_for(uow, user, space_name, name, Action.DEPLOY)
        if health_path is not None:
            app.health_path = health_path
        if health_timeout is not None:
            app.health_timeout = health_timeout
        uow.apps.save(app)
        uow.audit.add(space.id, user.name, "app.update", name,
                      {"health_path": app.health_path, "health_timeout": app.health_timeout})
        uow.commit()
    return app


def list_apps(ctx: Context, user: User, space_name: str) -> list[App]:
    with ctx.store.unit_of_work() as uow:
        space, _ = space_for(uow, user, space_name, Action.READ)
        return uow.apps.of_space(space.id)


@dataclass
class AppView:
    space: Space
    app: App
    release: Release | None
    domains: list[DomainName]
    instances: list[Instance]
    url: str
    ready: set[str]

    def _release_command(self) -> str | None:
        command = self.release.processes.get(RELEASE) if self.release else None
        return command[-1] if command else None  # the shell's script: what the Procfile said

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.app.name,
            "space": self.space.name,
            "url": self.url,
            "release": f"v{self.release.version}" if self.release else None,
            "image": self.release.image if self.release else None,
            "image_digest": self.release.image_digest if self.release else None,
            "health_check": {"path": self.app.health_path, "timeout": self.app.health_timeout},
            "formation": {k: p.as_dict() for k, p in sorted(self.app.formation.items())},
            "process_types": sorted(process_types(self.release.processes))
            if self.release else [],
            "release_command": self._release_command(),
            "domains": [d.hostname for d in self.domains],
            "instances": [instance_dict(i, i.name in self.ready) for i in self.instances],
            "created_at": self.app.created_at.isoformat(),
        }


def instance_dict(inst: Instance, ready: bool) -> dict[str, Any]:
    if inst.state == "running" and inst.labels.get("retiring") == "true":
        state = "stopping"  # out of the route, draining: a change replaced it
    elif inst.state == "running":
        state = "up" if ready else "starting"
    else:
        state = "crashed" if inst.exit_code not in (None, 0) else inst.state
    return {"name": f"{inst.process}.{inst.index}", "process": inst.process, "state": state,
            "release": f"v{inst.release}", "exit_code": inst.exit_code,
            "started_at": inst.started_at.isoformat() if inst.started_at else None}


def app_views(ctx: Context, user: User, space_name: str) -> list[AppView]:
    """Every app of a space as `show_app` shows it, with one look at the pool for all."""
    with ctx.store.unit_of_work() as uow:
        space, _ = space_for(uow, user, space_name, Action.READ)
        found = [(app, uow.releases.get(app.id, app.release_version)
                  if app.release_version else None, uow.domains.of_app(app.id))
                 for app in uow.apps.of_space(space.id)]
    running = pool_of(ctx, space).instances(space.name)
    views = []
    for app, release, domains in found:
        instances = [i for i in running if i.app == app.name]
        ready = {i.name for i in instances if i.labels.get("ready") == "true"}
        views.append(AppView(space, app, release, domains, instances,
                             url(ctx, space, app.name), ready))
    return views


def find_app(ctx: Context, user: User, space_name: str, name: str) -> tuple[App, str]:
    """An app as the store has it and its URL, without asking its pool for instances."""
    with ctx.store.unit_of_work() as uow:
        space, app = app_for(uow, user, space_name, name, Action.READ)
    return app, url(ctx, space, app.name)


def show_app(ctx: Context, user: User, space_name: str, name: str) -> AppView:
    with ctx.store.unit_of_work() as uow:
        space, app = app_for(uow, user, space_name, name, Action.READ)
        release = uow.releases.get(app.id, app.release_version) if app.release_version else None
        domains = uow.domains.of_app(app.id)
    instances = pool_of(ctx, space).instances(space.name, app.name)
    ready = {i.name for i in instances if i.labels.get("ready") == "true"}
    return AppView(space, app, release, domains, instances,
                   url(ctx, space, app.name), ready)


def destroy_app(ctx: Context, user: User, space_name: str, name: str) -> None:
    with ctx.store.unit_of_work() as uow:
        space, app = app_for(uow, user, space_name, name, Action.DEPLOY)
        with ctx.locks.hold(app.id):
            pool_of(ctx, space).remove_app(space.name, app.name)
            uow.apps.delete(app.id)
            uow.audit.add(space.id, user.name, "app.destroy", name, {})
            uow.commit()
            forget_app(ctx, space.name, app)


def _reroute(ctx: Context, space: Space, app: App) -> None:
    """After a hostname change: the pool routes the app's new set of hostnames. Under the
    app's lock, with its state read there: a deploy in progress finishes first, and an app
    destroyed meanwhile stays destroyed."""
    with ctx.locks.hold(app.id):
        with ctx.store.unit_of_work() as uow:
            fresh = uow.apps.by_id(app.id)
            state = current_state(ctx, uow, space, fresh) if fresh else None
        if state is not None:
            pool_of(ctx, space).apply(state)


def add_domain(ctx: Context, user: User, space_name: str, name: str, hostname: str) -> DomainName:
    host = check_hostname(hostname)
    for base in base_domains(ctx):
        if host == base or host.endswith("." + base):
            raise Invalid(f"{host} is under Cove's own domain {base}: apps already get "
                          f"<app>-<space>.{base}; add a domain you own instead")
    check_routable(host)
    with ctx.store.unit_of_work() as uow:
        space, app = app_for(uow, user, space_name, name, Action.DEPLOY)
        if uow.domains.by_hostname(host):
            raise Conflict(f"domain {host} is already in use by an app")
        domain = uow.domains.add(app.id, host)
        uow.audit.add(space.id, user.name, "domain.add", name, {"domain": host})
        uow.commit()
    try:
        _reroute(ctx, space, app)
    except RouteRefused:
        # Only this request fails: the domain goes again, every other route is untouched.
        with ctx.store.unit_of_work() as uow:
            uow.domains.delete(domain.id)
            uow.commit()
        _reroute(ctx, space, app)
        raise
    return domain


def remove_domain(ctx: Context, user: User, space_name: str, name: str, hostname: str) -> None:
    host = hostname.strip().lower().rstrip(".")
    with ctx.store.unit_of_work() as uow:
        space, app = app_for(uow, user, space_name, name, Action.DEPLOY)
        domain = uow.domains.by_hostname(host)
        if domain is None or domain.app_id != app.id:
            raise NotFound(f"app {name!r} has no domain {host}")
        uow.domains.delete(domain.id)
        uow.audit.add(space.id, user.name, "domain.remove", name, {"domain": host})
        uow.commit()
    _reroute(ctx, space, app)


def list_domains(ctx: Context, user: User, space_name: str, name: str) -> list[DomainName]:
    with ctx.store.unit_of_work() as uow:
        _, app = app_for(uow, user, space_name, name, Action.READ)
        return uow.domains.of_app(app.id)
