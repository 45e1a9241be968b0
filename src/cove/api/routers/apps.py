"""Apps: create, inspect, destroy; their instances, logs, domains and readiness checks."""

from __future__ import annotations

import threading
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from cove.api.deps import ERRORS, Ctx, Me
from cove.api.schemas import AppIn, AppOut, AppPatch, DoctorOut, DomainIn, DomainOut, InstanceOut
from cove.api.streams import pumped
from cove.services import apps, doctor
from cove.services.logs import app_logs

MAX_LOG_TAIL = 10_000
router = APIRouter(prefix="/v1/spaces/{space}/apps", tags=["apps"], responses=ERRORS)


def _app(ctx: Ctx, user: Me, space: str, name: str) -> AppOut:
    return AppOut.model_validate(apps.show_app(ctx, user, space, name).as_dict())


@router.get("")
def list_apps(ctx: Ctx, space: str, user: Me) -> list[AppOut]:
    """The space's apps with their instances (one look at the pool for all of them)."""
    return [AppOut.model_validate(view.as_dict()) for view in apps.app_views(ctx, user, space)]


@router.post("", status_code=201)
def create_app(ctx: Ctx, space: str, body: AppIn, user: Me) -> AppOut:
    app = apps.create_app(ctx, user, space, body.name, body.health_path, body.health_timeout)
    return _app(ctx, user, space, app.name)


@router.get("/{app}")
def show_app(ctx: Ctx, space: str, app: str, user: Me) -> AppOut:
    return _app(ctx, user, space, app)


@router.patch("/{app}")
def update_app(ctx: Ctx, space: str, app: str, body: AppPatch, user: Me) -> AppOut:
    apps.update_app(ctx, user, space, app, body.health_path, body.health_timeout)
    return _app(ctx, user, space, app)


@router.delete("/{app}", status_code=204)
def destroy_app(ctx: Ctx, space: str, app: str, user: Me) -> Response:
    apps.destroy_app(ctx, user, space, app)
    return Response(status_code=204)


@router.get("/{app}/instances")
def instances(ctx: Ctx, space: str, app: str, user: Me) -> list[InstanceOut]:
    return _app(ctx, user, space, app).instances


@router.get("/{app}/logs", response_class=StreamingResponse,
            responses={200: {"content": {"text/plain": {}},
                             "description": "`<time> <source>: <text>` lines"}})
async def logs(ctx: Ctx, space: str, app: str, user: Me, request: Request,
               tail: Annotated[int, Query(ge=0, le=MAX_LOG_TAIL)] = 100, follow: bool = False,
               seconds: Annotated[float | None, Query(gt=0, le=86_400)] = None
               ) -> StreamingResponse:
    """The app's output and Cove's events about it; with follow, new lines as they come
    (at most a few streams per user at once)."""
    deadline = time.monotonic() + seconds if seconds else None
    stopped = threading.Event()  # the client went away

    def stop() -> bool:
        return stopped.is_set() or (deadline is not None and time.monotonic() > deadline)

    release = request.app.state.streams.take(user.id)
    try:
        # Access is checked here, before the answer starts: a refusal is a plain error.
        lines = await run_in_threadpool(app_logs, ctx, user, space, app, tail, follow, stop)
    except BaseException:
        release()
        raise
    chunks = (f"{line.time.strftime('%Y-%m-%dT%H:%M:%S.%fZ')} {line.source}: {line.text}\n"
              .encode() for line in lines)
    return StreamingResponse(pumped(chunks, release, stopped),
                             media_type="text/plain; charset=utf-8")


@router.get("/{app}/domains")
def list_domains(ctx: Ctx, space: str, app: str, user: Me) -> list[str]:
    return [d.hostname for d in apps.list_domains(ctx, user, space, app)]


@router.post("/{app}/domains", status_code=201)
def add_domain(ctx: Ctx, space: str, app: str, body: DomainIn, user: Me) -> DomainOut:
    return DomainOut(hostname=apps.add_domain(ctx, user, space, app, body.hostname).hostname)


@router.delete("/{app}/domains/{hostname}", status_code=204)
def remove_domain(ctx: Ctx, space: str, app: str, hostname: str, user: Me) -> Response:
    apps.remove_domain(ctx, user, space, app, hostname)
    return Response(status_code=204)


@router.get("/{app}/doctor")
def app_doctor(ctx: Ctx, space: str, app: str, user: Me) -> DoctorOut:
    """The platform's checklist and the app's, read from what really runs."""
    return DoctorOut.of(space, app, doctor.app_report(ctx, user, space, app))
