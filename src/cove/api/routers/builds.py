"""Builds from uploaded source, their output, and the stacks buildpacks use."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, BinaryIO, cast

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from cove.api.deps import ERRORS, Ctx, Me, closing, event_stream, spooled
from cove.api.schemas import MAX_INT, BuildOut, StackOut
from cove.domain.events import MEDIA_TYPE
from cove.services import builds, stacks

router = APIRouter(prefix="/v1", tags=["builds"], responses=ERRORS)
EVENTS: dict[int | str, dict[str, Any]] = {200: {
    "content": {MEDIA_TYPE: {}},
    "description": "one JSON event a line: {type: output, text} as the work goes, then "
                   "{type: result, status: succeeded|failed, message, build, release}"}}


@router.post("/spaces/{space}/apps/{app}/builds", response_class=StreamingResponse,
             responses=EVENTS)
async def push(ctx: Ctx, space: str, app: str, request: Request, user: Me) -> StreamingResponse:
    """Upload a (gzipped) tarball of source; the response streams the build, then its
    result (the new release on success)."""
    release = request.app.state.streams.take(user.id)
    try:
        upload = await spooled(request)
        events = await run_in_threadpool(builds.push_source, ctx, user, space, app,
                                         cast(BinaryIO, upload))
    except BaseException:
        release()
        raise
    return event_stream(closing(upload, events), release)


@router.get("/spaces/{space}/apps/{app}/builds")
def list_builds(ctx: Ctx, space: str, app: str, user: Me) -> list[BuildOut]:
    return [BuildOut(number=b.number, status=b.status, builder=b.builder,
                     release=f"v{b.release_version}" if b.release_version else None,
                     error=b.error, created_by=b.created_by,
                     created_at=b.created_at.isoformat(),
                     finished_at=b.finished_at.isoformat() if b.finished_at else None)
            for b in builds.list_builds(ctx, user, space, app)]


@router.get("/spaces/{space}/apps/{app}/builds/{number}/log", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "the output"}})
def build_log(ctx: Ctx, space: str, app: str,
              number: Annotated[int, Path(ge=1, le=MAX_INT)], user: Me) -> Response:
    return Response(builds.build_log(ctx, user, space, app, number),
                    media_type="text/plain; charset=utf-8")


@router.get("/stacks")
def list_stacks(ctx: Ctx, user: Me) -> list[StackOut]:
    """The build and run images buildpacks use."""
    return [StackOut.model_validate(dataclasses.asdict(s))
            for s in stacks.list_stacks(ctx, user)]


@router.post("/stacks/build", response_class=StreamingResponse, responses=EVENTS)
def build_stacks(ctx: Ctx, user: Me) -> StreamingResponse:
    """(Re)make the stack images (platform admins); the output streams, then the result."""
    return event_stream(stacks.build_stacks(ctx, user))
