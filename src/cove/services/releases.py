"""Releases: deploy an image, change config, roll back, scale. Each is zero-downtime."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from cove.crashpoints import crash_point
from cove.domain.errors import Invalid, NotFound
from cove.domain.formation import apply_autoscale, apply_scale, default_formation
from cove.domain.models import App, Autoscale, Process, Release, Space, User, now
from cove.domain.names import check_config_key
from cove.domain.procfile import process_types
from cove.domain.quota import Usage, check_fits, formation_usage
from cove.domain.roles import Action
from cove.domain.template import SpaceTemplate
from cove.ports.pool import Autoscaling, ReleaseCommands
from cove.ports.registry import Credentials
from cove.ports.store import UnitOfWork
from cove.services.access import app_for
from cove.services.context import Context
from cove.services.pools import app_state, current_state, pool_of, unsupported
from cove.services.spaces import template_of, usage_of

log = logging.getLogger(__name__)

MAX_CONFIG_VALUE = 32 * 1024
MAX_CONFIG_TOTAL = 64 * 1024  # all of an app's config vars, names and values
MAX_CONFIG_VARS = 200
RELEASE_COMMAND_TIMEOUT = 600.0
POOL_ROLLOUT_SLACK = 30  # seconds a cluster gets beyond the health timeout (scheduling, pulls)


def _fits(uow: UnitOfWork, space: Space, app: App, formation: dict[str, Process],
          reserved: Usage, what: str) -> Usage:
    """Refuse before anything starts if the space's quota cannot hold the new formation;
    return what it adds to the space. Call it holding the space's quota lock."""
    tpl = template_of(space)
    # The space as it is (and what deploys in flight will add), with this app's formation
    # swapped for the new one. During a rollout old and new instances overlap briefly;
    # the quota counts the steady state.
    added = formation_usage(tpl, formation) - formation_usage(tpl, app.formation)
    check_fits(tpl.quota, usage_of(uow, space) + reserved + added, what)
    return added


def _release(ctx: Context, user: User, space_name: str, app_name: str, *, image: str | None,
             digest: str | None, config: dict[str, str] | None,
             processes: dict[str, list[str] | None] | None, description: str,
             action: str) -> Release:
    """The one pipeline every new release goes through.

    Steps: validate and check quota -> the release command, if any -> the pool rolls
    out (new instances, health checks, the route, the old ones drained and stopped; a
    failed rollout is undone by the pool and changes nothing) -> record the release.
    If recording fails, the pool rolls back to the previous state.
    """
    with ctx.store.unit_of_work() as uow:
        space, app = app_for(uow, user, space_name, app_name, Action.DEPLOY)
    with ctx.locks.hold(app.id), ExitStack() as reservation:
        with ctx.quota.hold(space.id) as reserved, ctx.store.unit_of_work() as uow:
            space, app = app_for(uow, user, space_name, app_name, Action.DEPLOY)
            current = uow.releases.get(app.id, app.release_version) if app.release_version else None
            if digest is None or processes is None:
                if current is None:
                    raise Invalid(f"app {app_name!r} has no release yet: "
                                  f"`cove deploy {app_name} IMAGE` first")
                image, digest, processes = current.image, current.image_digest, current.processes
            assert image is not None
            tpl = template_of(space)
            formation = default_formation(tpl, process_types(processes), app.formation)
            added = _fits(uow, space, app, formation, reserved, f"deploying {app_name!r}")
            # Counted in the space until the release is recorded (or fails).
            reservation.enter_context(ctx.quota.reserve(space.id, added))
            version = uow.releases.latest_version(app.id) + 1
            cfg = dict(app.config if config is None else config)
            candidate = Release(0, app.id, version, image, digest, cfg, dict(processes),
                                formation_dict(formation),
                                description, user.name, now())
        ctx.logs.record(app.id, f"{user.name}: {description} as v{version}; starting instances")
        pool = pool_of(ctx, space)
        crash_point("release.starting")
        with ctx.store.unit_of_work() as uow:
            previous = current_state(ctx, uow, space, app)
            domains = [d.hostname for d in uow.domains.of_app(app.id)]
        state = app_state(ctx, space, app, candidate, formation, domains)
        try:
            if state.release_command is not None:
                # Like Heroku's release phase: once per new release, before traffic.
                if not isinstance(pool, ReleaseCommands):
                    raise unsupported(pool, "a Procfile release command")
                pool.run_release_command(state, RELEASE_COMMAND_TIMEOUT)
            pool.deploy(state, previous, app.health_timeout + POOL_ROLLOUT_SLACK)
        except Exception as err:
            ctx.logs.record(app.id, f"v{version} failed: {err}")
            raise
        crash_point("release.rolled-out")
        try:
            with ctx.store.unit_of_work() as uow:
                fresh = uow.apps.by_id(app.id)
                if fresh is None:
                    raise NotFound(f"app {app_name!r} was destroyed during the deploy")
                release = uow.releases.add(candidate)
                fresh.release_version = version
                fresh.config = cfg
                fresh.formation = formation
                uow.apps.save(fresh)
                uow.audit.add(space.id, user.name, action, app_name,
                              {"release": f"v{version}", "image": image,
                               "description": description})
                uow.commit()
            crash_point("release.recorded")
        except BaseException:
            # Not recorded: roll the pool back to what the store says, the way it rolled
            # forward (the previous release's instances start healthy before the switch).
            if previous is not None:
                pool.deploy(previous, state, app.health_timeout + POOL_ROLLOUT_SLACK)
            else:
                pool.remove_app(space.name, app.name)
            raise
        _record_quietly(ctx, app.id, f"v{version} is live")
    return release


def _record_quietly(ctx: Context, app_id: int, text: str) -> None:
    """Once a release is recorded the change is made: an event that cannot be written
    must not turn it into an error the user would take for "not applied"."""
    try:
        ctx.logs.record(app_id, text)
    except Exception:
        log.exception("could not record %r for app %s", text, app_id)


def deploy_image(ctx: Context, user: User, space_name: str, app_name: str, image: str,
                 credentials: Credentials | None = None) -> Release:
    image = image.strip()
    if not image or any(c.isspace() for c in image) or len(image) > 512:
        raise Invalid("give an image reference such as registry.example.com/team/app:1.2")
    with ctx.store.unit_of_work() as uow:
        app_for(uow, user, space_name, app_name, Action.DEPLOY)  # authorise before pulling
    digest = ctx.resolver.resolve(image, credentials)
    return _release(ctx, user, space_name, app_name, image=image, digest=digest, config=None,
                    processes={"web": None}, description=f"Deploy {image}", action="app.deploy")


def deploy_built_image(ctx: Context, user: User, space_name: str, app_name: str, label: str,
                       image_id: str, processes: dict[str, list[str] | None],
                       description: str) -> Release:
    """A release of an image Cove built itself (already in the local image store)."""
    return _release(ctx, user, space_name, app_name, image=label, digest=image_id,
                    config=None, processes=processes, description=description,
                    action="app.deploy")


def set_config(ctx: Context, user: User, space_name: str, app_name: str,
               changes: dict[str, str | None]) -> Release | None:
    """Set (value) or unset (None) config vars; a deployed app gets a new release."""
    if not changes:
        raise Invalid("give at least one KEY=value (or KEY to unset)")
    for key, value in changes.items():
        check_config_key(key)
        if value is not None and (len(value) > MAX_CONFIG_VALUE or "\x00" in value):
            raise Invalid(f"value of {key} is too long or contains a NUL byte")
    with ctx.store.unit_of_work() as uow:
        space, app = app_for(uow, user, space_name, app_name, Action.DEPLOY)
        config = dict(app.config)
        for key, value in changes.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        total = sum(len(k.encode()) + len(v.encode()) for k, v in config.items())
        if len(config) > MAX_CONFIG_VARS or total > MAX_CONFIG_TOTAL:
            raise Invalid(f"an app's config holds at most {MAX_CONFIG_VARS} vars and "
                          f"{MAX_CONFIG_TOTAL // 1024} KiB in all (this change makes "
                          f"{len(config)} vars, {total // 1024} KiB): keep large data in files "
                          "or a backing service")
        if app.release_version is None:
            app.config = config
            uow.apps.save(app)
            uow.audit.add(space.id, user.name, "config.set", app_name, {"keys": sorted(changes)})
            uow.commit()
            return None
    keys = ", ".join(sorted(changes))
    return _release(ctx, user, space_name, app_name, image=None, digest=None, config=config,
                    processes=None, description=f"Config change: {keys}", action="config.set")


def get_config(ctx: Context, user: User, space_name: str, app_name: str) -> dict[str, str]:
    with ctx.store.unit_of_work() as uow:
        # Config often holds secrets: viewers may not read it.
        _, app = app_for(uow, user, space_name, app_name, Action.DEPLOY)
        return dict(app.config)


def list_releases(ctx: Context, user: User, space_name: str, app_name: str) -> list[Release]:
    with ctx.store.unit_of_work() as uow:
        _, app = app_for(uow, user, space_name, app_name, Action.READ)
        return uow.releases.of_app(app.id)


def rollback(ctx: Context, user: User, space_name: str, app_name: str,
             version: int | None = None) -> Release:
    """A new release with the image, config and process types of an older one."""
    with ctx.store.unit_of_work() as uow:
        _, app = app_for(uow, user, space_name, app_name, Action.DEPLOY)
        if version is None:
            current = app.release_version or 0
            older = [r.version for r in uow.releases.of_app(app.id) if r.version < current]
            if not older:
                raise Invalid(f"app {app_name!r} has no earlier release to roll back to")
            version = older[0]
        target = uow.releases.get(app.id, version)
        if target is None:
            raise NotFound(f"app {app_name!r} has no release v{version}: `cove releases "
                           f"{app_name}` lists them")
    return _release(ctx, user, space_name, app_name, image=target.image,
                    digest=target.image_digest, config=target.config,
                    processes=target.processes, description=f"Rollback to v{version}",
                    action="app.rollback")


FormationChange = Callable[[SpaceTemplate, dict[str, Process], Release], dict[str, Process]]


def scale(ctx: Context, user: User, space_name: str, app_name: str,
          changes: dict[str, tuple[int | None, str | None]]) -> dict[str, Process]:
    if not changes:
        raise Invalid("give at least one TYPE=COUNT, e.g. `cove scale hello web=3`")
    return _change_formation(
        ctx, user, space_name, app_name, "scaling", "app.scale",
        lambda tpl, current, release: apply_scale(tpl, current,
                                                  process_types(release.processes), changes))


def autoscale(ctx: Context, user: User, space_name: str,
              app_name: str, process: str, setting: Autoscale | None) -> dict[str, Process]:
    """Let the pool size a process type (an optional capability: Kubernetes pools have it)."""
    with ctx.store.unit_of_work() as uow:
        space, _ = app_for(uow, user, space_name, app_name, Action.DEPLOY)
    if not isinstance(pool_of(ctx, space), Autoscaling):
        raise unsupported(pool_of(ctx, space), "autoscaling")
    return _change_formation(
        ctx, user, space_name, app_name, "autoscaling", "app.autoscale",
        lambda tpl, current, release: apply_autoscale(tpl, current, process, setting))


def _change_formation(ctx: Context, user: User, space_name: str,
                      app_name: str, what: str, action: str,
                      change: FormationChange) -> dict[str, Process]:
    """Check the new formation against the quota, record it, and roll it out (or undo it)."""
    with ctx.store.unit_of_work() as uow:
        space, app = app_for(uow, user, space_name, app_name, Action.DEPLOY)
    with ctx.locks.hold(app.id):
        # The quota check and the write it allows, under the space's lock.
        with ctx.quota.hold(space.id) as reserved, ctx.store.unit_of_work() as uow:
            space, app = app_for(uow, user, space_name, app_name, Action.DEPLOY)
            release = uow.releases.get(app.id, app.release_version) if app.release_version else None
            if release is None:
                raise Invalid(f"app {app_name!r} has no release yet: deploy it before {what}")
            formation = change(template_of(space), app.formation, release)
            _fits(uow, space, app, formation, reserved, f"{what} {app_name!r}")
            previous = app.formation
            app.formation = formation
            uow.apps.save(app)
            uow.audit.add(space.id, user.name, action, app_name, formation_dict(formation))
            uow.commit()
        try:
            with ctx.store.unit_of_work() as uow:
                domains = [d.hostname for d in uow.domains.of_app(app.id)]
            before = app_state(ctx, space, app, release, previous, domains)
            pool_of(ctx, space).deploy(app_state(ctx, space, app, release, formation, domains),
                                       before, app.health_timeout + POOL_ROLLOUT_SLACK)
        except Exception:
            with ctx.store.unit_of_work() as uow:
                fresh = uow.apps.by_id(app.id)
                if fresh is not None:
                    fresh.formation = previous
                    uow.apps.save(fresh)
                    uow.commit()
            raise
    return formation


def formation_dict(formation: dict[str, Process]) -> dict[str, Any]:
    return {k: p.as_dict() for k, p in sorted(formation.items())}
