"""Entities. Plain dataclasses; the store maps them to rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class User:
    id: int
    name: str
    password_hash: str
    is_admin: bool = False
    created_at: dt.datetime = field(default_factory=now)


@dataclass(frozen=True)
class TokenInfo:
    """An API token as its owner sees it (the token itself is shown once, at login)."""

    id: int
    description: str
    created_at: dt.datetime
    expires_at: dt.datetime


@dataclass
class Space:
    id: int
    name: str
    owner_id: int
    template: dict[str, Any]  # the space template as it was applied, with any admin override
    created_at: dt.datetime = field(default_factory=now)


@dataclass(frozen=True)
class Autoscale:
    """Let the pool choose the count between min and max to hold a CPU target."""

    min: int
    max: int
    cpu_percent: int = 70


@dataclass
class Process:
    """One process type of an app: how many instances of which size."""

    count: int
    size: str
    autoscale: Autoscale | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count, "size": self.size}
        if self.autoscale is not None:
            out["autoscale"] = {"min": self.autoscale.min, "max": self.autoscale.max,
                                "cpu_percent": self.autoscale.cpu_percent}
        return out


@dataclass
class App:
    id: int
    space_id: int
    name: str
    config: dict[str, str] = field(default_factory=dict)
    formation: dict[str, Process] = field(default_factory=dict)
    health_path: str = "/"
    health_timeout: int = 30
    release_version: int | None = None  # the release that should be running
    created_at: dt.datetime = field(default_factory=now)


@dataclass(frozen=True)
class Release:
    """Immutable: image digest + config + process types + formation, versioned v1, v2, ..."""

    id: int
    app_id: int
    version: int
    image: str  # what the user asked for, for display
    image_digest: str  # what actually runs: repository@sha256:...
    config: dict[str, str]
    processes: dict[str, list[str] | None]  # type -> command; None = the image's own
    formation: dict[str, dict[str, Any]]
    description: str
    created_by: str
    created_at: dt.datetime = field(default_factory=now)


@dataclass
class DomainName:
    id: int
    app_id: int
    hostname: str


@dataclass
class AuditEvent:
    id: int
    space_id: int | None
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    created_at: dt.datetime = field(default_factory=now)
