"""Space roles and what each may do."""

from __future__ import annotations

import enum

from cove.domain.errors import Invalid


class Role(enum.IntEnum):
    """Ordered: a higher role can do everything a lower one can."""

    VIEWER = 1
    DEVELOPER = 2
    ADMIN = 3

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls[value.upper()]
        except KeyError:
            raise Invalid(f"unknown role {value!r}: use admin, developer or viewer") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class Action(enum.Enum):
    READ = Role.VIEWER
    DEPLOY = Role.DEVELOPER  # create/destroy apps, deploy, scale, config, domains, logs
    ADMINISTER = Role.ADMIN  # members, audit log, destroy the space


def allows(role: Role, action: Action) -> bool:
    return role >= action.value
