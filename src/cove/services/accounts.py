"""Sign-up, API tokens and authentication."""

from __future__ import annotations

import hashlib
import secrets

from cove.domain.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from cove.domain.models import Space, TokenInfo, User, now
from cove.domain.names import check_name
from cove.domain.roles import Role
from cove.domain.template import template_record
from cove.ports.store import UnitOfWork
from cove.services.context import Context
from cove.services.pools import provision_and_commit

MIN_PASSWORD = 8
TOKEN_PREFIX = "cove_"


def token_hash(token: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough; passwords use Argon2.
    return hashlib.sha256(token.encode()).hexdigest()


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"password too short: use at least {MIN_PASSWORD} characters")


def signup(ctx: Context, name: str, password: str, *, by: User | None = None,
           is_admin: bool = False) -> tuple[User, Space]:
    """Create a user and their personal space (named after them) from the space template."""
    check_name("user", name)
    _check_password(password)
    if not ctx.settings.signup_open and not (by and by.is_admin) and not is_admin:
        raise Forbidden("sign-up is closed on this Cove: ask the platform admin for an account")
    with ctx.store.unit_of_work() as uow:
        if uow.users.by_name(name) or uow.spaces.by_name(name):
            raise Conflict(f"the name {name!r} is taken: choose another")
        user = uow.users.add(name, ctx.hasher.hash(password), is_admin)
        space = uow.spaces.add(name, user.id, template_record(ctx.template))
        uow.memberships.set(space.id, user.id, Role.ADMIN)
        uow.audit.add(space.id, name, "user.signup", name, {})
        uow.audit.add(space.id, name, "space.create", name, {"personal": True})
        provision_and_commit(ctx, uow, space)
    return user, space


def login(ctx: Context, name: str, password: str, description: str = "cli",
          address: str = "") -> str:
    """Check a password and issue a new API token (shown once, stored hashed). Failures
    are throttled per account and per address before any password is checked."""
    ctx.logins.check(name, address)
    with ctx.logins.checking(), ctx.store.unit_of_work() as uow:
        user = uow.users.by_name(name)
        # Verify against a dummy hash for unknown users so timing does not reveal names.
        stored = user.password_hash if user else _DUMMY.get(ctx)
        if not ctx.hasher.verify(stored, password) or user is None:
            ctx.logins.failed(name, address)
            raise Unauthorized("wrong user name or password")
        token = _issue(ctx, uow, user, description)
        uow.commit()
    return token


def _issue(ctx: Context, uow: UnitOfWork, user: User, description: str) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    uow.tokens.add(user.id, token_hash(token), description[:255],
                   now() + ctx.settings.token_lifetime)
    return token


def logout(ctx: Context, token: str) -> None:
    with ctx.store.unit_of_work() as uow:
        uow.tokens.delete(token_hash(token))
        uow.commit()


def authenticate(ctx: Context, token: str) -> User:
    with ctx.store.unit_of_work() as uow:
        user = uow.tokens.user_for(token_hash(token), now(), ctx.settings.token_lifetime)
    if user is None:
        raise Unauthorized("invalid or expired token: run `cove login`")
    return user


def tokens(ctx: Context, user: User) -> list[TokenInfo]:
    with ctx.store.unit_of_work() as uow:
        return uow.tokens.of_user(user.id)


def revoke(ctx: Context, user: User, token_id: int) -> None:
    """End one of your own tokens (another user's is not found)."""
    with ctx.store.unit_of_work() as uow:
        if not uow.tokens.delete_id(user.id, token_id):
            raise NotFound(f"you have no token {token_id}: `cove auth tokens` lists yours")
        uow.commit()


def change_password(ctx: Context, user: User, token: str, old: str, new: str) -> int:
    """Set a new password (knowing the old one); every other token of the user ends, so a
    stolen one stops working. Return how many ended."""
    _check_password(new)
    ctx.logins.check(user.name, "")
    with ctx.logins.checking(), ctx.store.unit_of_work() as uow:
        fresh = uow.users.get(user.id)
        if fresh is None or not ctx.hasher.verify(fresh.password_hash, old):
            ctx.logins.failed(user.name, "")
            raise Forbidden("the current password is wrong")
        uow.users.set_password(user.id, ctx.hasher.hash(new))
        ended = uow.tokens.delete_others(user.id, token_hash(token))
        uow.commit()
    return ended


class _Dummy:
    def __init__(self) -> None:
        self._hash: str | None = None

    def get(self, ctx: Context) -> str:
        if self._hash is None:
            self._hash = ctx.hasher.hash(secrets.token_hex(16))
        return self._hash


_DUMMY = _Dummy()
