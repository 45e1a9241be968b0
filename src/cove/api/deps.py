"""What every router needs: the context, the caller, the documented errors, and helpers
for request bodies on disk and streamed responses."""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request
from fastapi.responses import StreamingResponse

from cove.api.schemas import ErrorOut
from cove.api.streams import pumped
from cove.domain.builds import MAX_UPLOAD
from cove.domain.errors import Invalid, Unauthorized
from cove.domain.events import MEDIA_TYPE, Event, encode
from cove.domain.models import User
from cove.services import accounts
from cove.services.context import Context

T = TypeVar("T")

# Every status an endpoint may answer with besides its own, each in the one error envelope.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "not supported here (e.g. by the space's pool)"},
    401: {"model": ErrorOut, "description": "no or an unknown API token"},
    403: {"model": ErrorOut, "description": "your role does not allow it, or over quota"},
    404: {"model": ErrorOut, "description": "no such object among those you may see"},
    409: {"model": ErrorOut, "description": "conflicts with what exists"},
    422: {"model": ErrorOut, "description": "invalid input, or a deploy or build that failed"},
    429: {"model": ErrorOut, "description": "too many at once or too fast: wait and retry"},
}


def context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


Ctx = Annotated[Context, Depends(context)]


def token_of(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("not logged in: run `cove login`")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        # git and other basic-auth clients send the API token as the password
        try:
            return base64.b64decode(value).decode().partition(":")[2]
        except ValueError:
            pass
    raise Unauthorized("send the API token as `Authorization: Bearer <token>`")


def current_user(ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> User:
    return accounts.authenticate(ctx, token_of(authorization))


Me = Annotated[User, Depends(current_user)]


async def spooled(request: Request, limit: int = MAX_UPLOAD) -> Any:
    """The request body in a temporary file on disk (git reads it through a descriptor);
    chunked transfer encoding is already undone here. Over `limit` is refused."""
    body = tempfile.SpooledTemporaryFile(max_size=8 * 2**20)  # noqa: SIM115 - the caller closes
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            body.close()
            raise Invalid(f"the upload is larger than {limit // 2**20} MiB: leave build output "
                          "and dependencies out (.coveignore, .gitignore)")
        body.write(chunk)
    body.rollover()
    body.flush()
    body.seek(0)
    return body


def event_stream(events: Iterator[Event], release: Callable[[], None] = lambda: None
                 ) -> StreamingResponse:
    """A build's or a stack build's output as it comes, then its result: one JSON event
    a line (application/x-ndjson), from a thread of its own (see api.streams)."""
    lines = (encode(event).encode() + b"\n" for event in events)
    return StreamingResponse(pumped(lines, release), media_type=MEDIA_TYPE)


def closing(resource: Any, chunks: Iterator[T]) -> Iterator[T]:
    """Stream `chunks`, then close `resource` (also when the client goes away)."""
    try:
        yield from chunks
    finally:
        resource.close()
