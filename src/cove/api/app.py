"""The REST API: thin handlers that parse, call one service and map the result, one
router per resource (api/routers), every response described by a model."""

from __future__ import annotations

from fastapi import FastAPI

from cove import __version__
from cove.api import errors
from cove.api.routers import accounts, apps, builds, git, releases, spaces
from cove.api.streams import StreamLimits
from cove.services.context import Context


def create_api(ctx: Context) -> FastAPI:
    api = FastAPI(title="Cove", version=__version__,
                  description="Cove's REST API: spaces, apps, releases, config, scale, logs.")
    api.state.ctx = ctx
    api.state.streams = StreamLimits()  # logs -f and builds
    # git requests apart: a push is a git request and, through its hook, a build
    api.state.git_streams = StreamLimits(per_user=16, what="git requests")
    errors.install(api)

    @api.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for module in (accounts, spaces, apps, releases, builds, git):
        api.include_router(module.router)
    return api
