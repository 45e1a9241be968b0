"""Releases and what makes them: image deploys, rollbacks, config and formation."""

from __future__ import annotations

from fastapi import APIRouter

from cove.api.deps import ERRORS, Ctx, Me
from cove.api.schemas import (
    AutoscaleIn,
    ConfigOut,
    ConfigPatch,
    DeployIn,
    ProcessOut,
    ProcessPatch,
    ReleaseOut,
    RollbackIn,
    release_dict,
)
from cove.domain.models import Autoscale, Process, User
from cove.ports.registry import Credentials
from cove.services import apps, releases
from cove.services.context import Context

router = APIRouter(prefix="/v1/spaces/{space}/apps/{app}", tags=["releases"],
                   responses=ERRORS)


def _release(ctx: Context, user: User, space: str, app: str, version: int) -> ReleaseOut:
    _, address = apps.find_app(ctx, user, space, app)
    release = next(r for r in releases.list_releases(ctx, user, space, app)
                   if r.version == version)
    return ReleaseOut.model_validate({**release_dict(release, version), "url": address})


def _formation(formation: dict[str, Process]) -> dict[str, ProcessOut]:
    return {k: ProcessOut.model_validate(v) for k, v in releases.formation_dict(formation).items()}


@router.post("/deploys", status_code=201)
def deploy(ctx: Ctx, space: str, app: str, body: DeployIn, user: Me) -> ReleaseOut:
    """Deploy an image (by tag or digest; resolved to its digest) as a new release."""
    creds = Credentials(body.username, body.password or "") if body.username else None
    release = releases.deploy_image(ctx, user, space, app, body.image, creds)
    return _release(ctx, user, space, app, release.version)


@router.get("/releases")
def list_releases(ctx: Ctx, space: str, app: str, user: Me) -> list[ReleaseOut]:
    current = apps.find_app(ctx, user, space, app)[0].release_version
    return [ReleaseOut.model_validate(release_dict(r, current))
            for r in releases.list_releases(ctx, user, space, app)]


@router.post("/rollback", status_code=201)
def rollback(ctx: Ctx, space: str, app: str, body: RollbackIn, user: Me) -> ReleaseOut:
    release = releases.rollback(ctx, user, space, app, body.version)
    return _release(ctx, user, space, app, release.version)


@router.get("/config")
def get_config(ctx: Ctx, space: str, app: str, user: Me) -> dict[str, str]:
    return releases.get_config(ctx, user, space, app)


@router.patch("/config")
def set_config(ctx: Ctx, space: str, app: str, body: ConfigPatch, user: Me) -> ConfigOut:
    """Set (a value) or unset (null) config vars; a deployed app gets a new release."""
    release = releases.set_config(ctx, user, space, app, body.vars)
    return ConfigOut(config=releases.get_config(ctx, user, space, app),
                     release=f"v{release.version}" if release else None)


@router.get("/formation")
def formation(ctx: Ctx, space: str, app: str, user: Me) -> dict[str, ProcessOut]:
    return _formation(apps.find_app(ctx, user, space, app)[0].formation)


@router.patch("/formation")
def scale(ctx: Ctx, space: str, app: str, body: dict[str, ProcessPatch],
          user: Me) -> dict[str, ProcessOut]:
    changes = {k: (v.count, v.size) for k, v in body.items()}
    return _formation(releases.scale(ctx, user, space, app, changes))


@router.put("/formation/{process}/autoscale")
def autoscale(ctx: Ctx, space: str, app: str, process: str, body: AutoscaleIn,
              user: Me) -> dict[str, ProcessOut]:
    setting = Autoscale(body.min, body.max, body.cpu_percent)
    return _formation(releases.autoscale(ctx, user, space, app, process, setting))


@router.delete("/formation/{process}/autoscale")
def stop_autoscale(ctx: Ctx, space: str, app: str, process: str,
                   user: Me) -> dict[str, ProcessOut]:
    return _formation(releases.autoscale(ctx, user, space, app, process, None))
