"""What a destroyed app leaves outside the store and its pool, removed in one place for
apps and for whole spaces."""

from __future__ import annotations

from cove.domain.builds import build_repository
from cove.domain.models import App
from cove.services.context import Context


def forget_app(ctx: Context, space: str, app: App) -> None:
    """Its events, its git repository and the images built for it."""
    ctx.logs.forget(app.id)
    if ctx.repos is not None:
        ctx.repos.remove(space, app.name)
    if ctx.builder is not None:
        ctx.builder.forget(build_repository(space, app.name))
