"""Users, API tokens and who you are."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from cove.api.deps import ERRORS, Ctx, Me, token_of
from cove.api.schemas import LoginIn, MeOut, SignupIn, SignupOut, SpaceRoleOut, TokenOut
from cove.services import accounts, spaces

router = APIRouter(prefix="/v1", tags=["accounts"], responses=ERRORS)


@router.post("/users", status_code=201)
def signup(ctx: Ctx, body: SignupIn,
           authorization: Annotated[str | None, Header()] = None) -> SignupOut:
    """Create a user and their personal space (a platform admin may sign others up when
    sign-up is closed)."""
    by = accounts.authenticate(ctx, token_of(authorization)) if authorization else None
    user, space = accounts.signup(ctx, body.name, body.password, by=by)
    return SignupOut(user=user.name, space=space.name)


@router.post("/tokens", status_code=201)
def login(ctx: Ctx, body: LoginIn) -> TokenOut:
    return TokenOut(token=accounts.login(ctx, body.name, body.password, body.description))


@router.delete("/tokens/current", status_code=204)
def logout(ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> Response:
    accounts.logout(ctx, token_of(authorization))
    return Response(status_code=204)


@router.get("/me")
def me(ctx: Ctx, user: Me) -> MeOut:
    return MeOut(name=user.name, is_admin=user.is_admin,
                 spaces=[SpaceRoleOut(name=s.name, role=r.label)
                         for s, r in spaces.list_spaces(ctx, user)])
