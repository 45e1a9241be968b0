"""Smart HTTP for `git clone` and `git push` to an app's repository."""

from __future__ import annotations

from typing import BinaryIO, cast

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from cove.api.deps import Ctx, closing, spooled, token_of
from cove.api.streams import pumped
from cove.services import accounts, sources

router = APIRouter(include_in_schema=False)


@router.api_route("/git/{space}/{app}.git/{path:path}", methods=["GET", "POST"])
async def git(ctx: Ctx, space: str, app: str, path: str, request: Request) -> Response:
    """The API token is the password."""
    authorization = request.headers.get("authorization")
    if not authorization:
        return Response("log in with your user name and API token (`cove auth token`)\n",
                        401, headers={"WWW-Authenticate": 'Basic realm="cove"'})
    token = token_of(authorization)
    user = await run_in_threadpool(accounts.authenticate, ctx, token)
    release = request.app.state.git_streams.take(user.id)
    try:
        body = await spooled(request)
        answer = await run_in_threadpool(
            sources.serve_git, ctx, user, token, space, app, request.method, path,
            request.url.query, request.headers.get("content-type", ""), cast(BinaryIO, body))
    except BaseException:
        release()
        raise
    return StreamingResponse(pumped(closing(body, answer.body), release), answer.status,
                             headers=answer.headers)
