"""Serving an app's git repository: clone for members, push (and so deploy) for developers."""

from __future__ import annotations

from typing import BinaryIO

from cove.domain.errors import NotFound, Unsupported
from cove.domain.models import User
from cove.domain.roles import Action
from cove.ports.repos import GitResponse
from cove.services.access import app_for
from cove.services.context import Context

# What git's smart HTTP protocol asks for; nothing else of a repository is served.
GIT_PATHS = frozenset({"info/refs", "git-upload-pack", "git-receive-pack"})


def serve_git(ctx: Context, user: User, token: str, space_name: str, app_name: str,
              method: str, path: str, query: str, content_type: str,
              body: BinaryIO) -> GitResponse:
    if ctx.repos is None:
        raise Unsupported("this Cove serves no git repositories")
    if path not in GIT_PATHS:
        raise NotFound(f"no such git resource {path!r}: clone or push the app's repository")
    pushing = "git-receive-pack" in (path, query.removeprefix("service="))
    with ctx.store.unit_of_work() as uow:
        space, app = app_for(uow, user, space_name, app_name,
                             Action.DEPLOY if pushing else Action.READ)
    # The push hook builds through the API as the pushing user, with their own token.
    env = {"COVE_USER": user.name, "COVE_TOKEN": token, "COVE_SPACE": space.name,
           "COVE_APP": app.name, "COVE_API_URL": ctx.settings.api_url}
    return ctx.repos.serve(space.name, app.name, method, path, query, content_type, body, env)
