"""Who may see and do what. Anything a caller may not see is NotFound, never Forbidden."""

from __future__ import annotations

from cove.domain.errors import Forbidden, NotFound
from cove.domain.models import App, Space, User
from cove.domain.roles import Action, Role, allows
from cove.ports.store import UnitOfWork


def space_for(uow: UnitOfWork, user: User, name: str, action: Action) -> tuple[Space, Role]:
    space = uow.spaces.by_name(name)
    role = uow.memberships.role(space.id, user.id) if space else None
    if space is not None and user.is_admin:
        # Platform admins act as space admins everywhere, whatever role a tenant gave them
        # in its space: no tenant can lock the operators out.
        role = Role.ADMIN
    if space is None or role is None:
        raise NotFound(f"no space named {name!r}: `cove spaces` lists yours")
    if not allows(role, action):
        raise Forbidden(
            f"your role in space {name!r} is {role.label}; this needs {action.value.label}: "
            "ask a space admin"
        )
    return space, role


def app_for(uow: UnitOfWork, user: User, space_name: str, app_name: str,
            action: Action) -> tuple[Space, App]:
    space, _ = space_for(uow, user, space_name, action)
    app = uow.apps.get(space.id, app_name)
    if app is None:
        raise NotFound(f"no app named {app_name!r} in space {space_name!r}: `cove apps` lists them")
    return space, app
