"""Spaces (tenants), their members, quota and audit trail."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from cove.domain.errors import Conflict, Forbidden, Invalid, NotFound, QuotaExceeded
from cove.domain.models import AuditEvent, Space, User
from cove.domain.names import check_name
from cove.domain.quota import Usage, space_usage
from cove.domain.roles import Action, Role
from cove.domain.template import Quota, SpaceTemplate, parse_template, template_record
from cove.ports.store import UnitOfWork
from cove.services.access import space_for
from cove.services.context import Context, space_lock
from cove.services.forget import forget_app
from cove.services.pools import choose_pool, pool_of, provision_and_commit


def template_of(space: Space) -> SpaceTemplate:
    return parse_template(space.template)


def usage_of(uow: UnitOfWork, space: Space) -> Usage:
    return space_usage(template_of(space), (a.formation for a in uow.apps.of_space(space.id)))


@dataclass
class SpaceView:
    space: Space
    role: Role
    usage: Usage
    members: list[tuple[str, Role]]

    def as_dict(self) -> dict[str, Any]:
        tpl = template_of(self.space)
        return {
            "name": self.space.name,
            "role": self.role.label,
            "created_at": self.space.created_at.isoformat(),
            "pool": tpl.pool,
            "quota": tpl.quota.as_dict(),
            "usage": self.usage.as_dict(),
            "limits": {"default_size": tpl.default_size, "max_size": tpl.max_size,
                       "sizes": {n: s.as_dict() for n, s in tpl.sizes.items()}},
            "network": tpl.network.as_dict(),
            "security": {"profile": tpl.security.name, "run_as_uid": tpl.security.run_as_uid},
            "members": [{"user": n, "role": r.label} for n, r in self.members],
        }


def create_space(ctx: Context, user: User, name: str, pool: str | None = None) -> Space:
    check_name("space", name)
    chosen = choose_pool(ctx, user, pool)
    with ctx.store.unit_of_work() as uow:
        limit = ctx.settings.max_spaces_per_user
        if not user.is_admin and uow.spaces.owned_count(user.id) >= limit:
            raise QuotaExceeded(
                f"you already own {ctx.settings.max_spaces_per_user} spaces, the most allowed: "
                "destroy one or ask the platform admin")
        if uow.spaces.by_name(name) or uow.users.by_name(name):
            raise Conflict(f"the name {name!r} is taken: choose another")
        space = uow.spaces.add(name, user.id, {**template_record(ctx.template), "pool": chosen})
        uow.memberships.set(space.id, user.id, Role.ADMIN)
        uow.audit.add(space.id, user.name, "space.create", name, {"pool": chosen})
        provision_and_commit(ctx, uow, space)
    return space


def list_spaces(ctx: Context, user: User) -> list[tuple[Space, Role]]:
    with ctx.store.unit_of_work() as uow:
        if user.is_admin:
            mine = dict((s.id, r) for s, r in uow.memberships.of_user(user.id))
            return [(s, mine.get(s.id, Role.ADMIN)) for s in uow.spaces.all()]
        return uow.memberships.of_user(user.id)


def show_space(ctx: Context, user: User, name: str) -> SpaceView:
    with ctx.store.unit_of_work() as uow:
        space, role = space_for(uow, user, name, Action.READ)
        members = [(u.name, r) for u, r in uow.memberships.of_space(space.id)]
        return SpaceView(space, role, usage_of(uow, space), members)


def destroy_space(ctx: Context, user: User, name: str) -> None:
    with ctx.store.unit_of_work() as uow:
        space, _ = space_for(uow, user, name, Action.ADMINISTER)
        if uow.users.by_name(name) is not None:
            raise Conflict(f"{name!r} is a personal space and lives as long as its user")
        apps = uow.apps.of_space(space.id)
        with ExitStack() as held:  # no deploy or reconcile pass may act on it meanwhile
            held.enter_context(ctx.locks.hold(space_lock(space.id)))
            for app in apps:
                held.enter_context(ctx.locks.hold(app.id))
            pool_of(ctx, space).remove_space(name)  # and every app in it
            for app in apps:
                forget_app(ctx, space.name, app)
            uow.spaces.delete(space.id)
            uow.audit.add(space.id, user.name, "space.destroy", name, {})
            uow.commit()


def set_member(ctx: Context, user: User, space_name: str, member: str, role: Role) -> None:
    with ctx.store.unit_of_work() as uow, ExitStack() as held:
        space, _ = space_for(uow, user, space_name, Action.ADMINISTER)
        target = uow.users.by_name(member)
        if target is None:
            raise NotFound(f"no user named {member!r}")
        _lock_before_writing(ctx, space, held)
        current = uow.memberships.role(space.id, target.id)
        if current == Role.ADMIN and role != Role.ADMIN:
            _keep_an_admin(uow, space, target)
        uow.memberships.set(space.id, target.id, role)
        uow.audit.add(space.id, user.name, "member.set", member, {"role": role.label})
        provision_and_commit(ctx, uow, space)  # role bindings follow the members


def remove_member(ctx: Context, user: User, space_name: str, member: str) -> None:
    with ctx.store.unit_of_work() as uow, ExitStack() as held:
        space, _ = space_for(uow, user, space_name, Action.ADMINISTER)
        target = uow.users.by_name(member)
        if target is None or uow.memberships.role(space.id, target.id) is None:
            raise NotFound(f"{member!r} is not a member of space {space_name!r}")
        _lock_before_writing(ctx, space, held)
        _keep_an_admin(uow, space, target)
        uow.memberships.remove(space.id, target.id)
        uow.audit.add(space.id, user.name, "member.remove", member, {})
        provision_and_commit(ctx, uow, space)


def _lock_before_writing(ctx: Context, space: Space, held: ExitStack) -> None:
    """Take the space's lock (held until `provision_and_commit` has committed) before the
    first write: waiting for a reconcile pass while holding the store's write lock would
    hold up every other write meanwhile."""
    held.enter_context(ctx.locks.hold(space_lock(space.id)))


def _keep_an_admin(uow: UnitOfWork, space: Space, leaving: User) -> None:
    admins = [u for u, r in uow.memberships.of_space(space.id) if r == Role.ADMIN]
    if [u.id for u in admins] == [leaving.id]:
        raise Conflict(f"{leaving.name} is the last admin of {space.name!r}: add another first")


def set_quota(ctx: Context, user: User, space_name: str, changes: dict[str, int]) -> Quota:
    """Platform admins only: tenants can never raise their own quota."""
    if not user.is_admin:
        # Members get 403 (they can see the quota); strangers still learn nothing.
        with ctx.store.unit_of_work() as uow:
            space_for(uow, user, space_name, Action.READ)
        raise Forbidden("only the platform admin can change a space's quota")
    with ctx.store.unit_of_work() as uow, ExitStack() as held:
        space, _ = space_for(uow, user, space_name, Action.READ)
        _lock_before_writing(ctx, space, held)
        record = dict(space.template)
        quota = dict(record["quota"])
        for key, value in changes.items():
            if key not in quota:
                raise Invalid(f"unknown quota {key!r}: use one of {', '.join(quota)}")
            if not isinstance(value, int) or value < 0:
                raise Invalid(f"quota {key} must be a non-negative integer")
            quota[key] = value
        record["quota"] = quota
        parsed = parse_template(record)
        uow.spaces.set_template(space.id, record)
        uow.audit.add(space.id, user.name, "space.quota", space_name, dict(changes))
        space.template = record
        provision_and_commit(ctx, uow, space)
    return parsed.quota


def audit_log(ctx: Context, user: User, space_name: str, limit: int = 100) -> list[AuditEvent]:
    with ctx.store.unit_of_work() as uow:
        space, _ = space_for(uow, user, space_name, Action.ADMINISTER)
        return uow.audit.of_space(space.id, limit)
