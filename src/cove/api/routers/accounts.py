"""Users, API tokens and who you are."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response

from cove.api.deps import ERRORS, Ctx, Me, token_of
from cove.api.schemas import (
    MAX_INT,
    ErrorOut,
    LoginIn,
    MeOut,
    PasswordIn,
    PasswordOut,
    SignupIn,
    SignupOut,
    SpaceRoleOut,
    TokenInfoOut,
    TokenOut,
)
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


@router.post("/tokens", status_code=201, responses={429: {"model": ErrorOut,
                                                         "description": "too many failures"}})
def login(ctx: Ctx, body: LoginIn, request: Request) -> TokenOut:
    """A new API token for a name and password (failures are throttled per account and
    per address)."""
    return TokenOut(token=accounts.login(ctx, body.name, body.password, body.description,
                                         client_address(request)))


def client_address(request: Request) -> str:
    """Who is asking: the API listens on loopback behind Cove's router, which appends the
    address it saw to X-Forwarded-For (the last entry is the router's own observation)."""
    peer = request.client.host if request.client else ""
    forwarded = request.headers.get("x-forwarded-for", "")
    if forwarded and peer in ("127.0.0.1", "::1"):
        return forwarded.rsplit(",", 1)[-1].strip()
    return peer


@router.get("/tokens")
def list_tokens(ctx: Ctx, user: Me) -> list[TokenInfoOut]:
    """Your API tokens (not their secrets) and when each expires."""
    return [TokenInfoOut(id=t.id, description=t.description,
                         created_at=t.created_at.isoformat(), expires_at=t.expires_at.isoformat())
            for t in accounts.tokens(ctx, user)]


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(ctx: Ctx, token_id: Annotated[int, Path(ge=1, le=MAX_INT)],
                 user: Me) -> Response:
    accounts.revoke(ctx, user, token_id)
    return Response(status_code=204)


@router.put("/me/password")
def change_password(ctx: Ctx, body: PasswordIn, user: Me,
                    authorization: Annotated[str | None, Header()] = None) -> PasswordOut:
    """A new password, given the current one; every other token of yours ends."""
    ended = accounts.change_password(ctx, user, token_of(authorization), body.current, body.new)
    return PasswordOut(tokens_ended=ended)


@router.delete("/tokens/current", status_code=204)
def logout(ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> Response:
    accounts.logout(ctx, token_of(authorization))
    return Response(status_code=204)


@router.get("/me")
def me(ctx: Ctx, user: Me) -> MeOut:
    return MeOut(name=user.name, is_admin=user.is_admin,
                 spaces=[SpaceRoleOut(name=s.name, role=r.label)
                         for s, r in spaces.list_spaces(ctx, user)])
