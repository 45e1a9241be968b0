"""Request bodies and response shapes of the REST API."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, Field

from cove.domain.checks import Check, worst
from cove.domain.models import AuditEvent, Release


class SignupIn(BaseModel):
    name: str
    password: str


class LoginIn(BaseModel):
    name: str
    password: str
    description: str = "cli"


class SpaceIn(BaseModel):
    name: str
    pool: str | None = None


class AppIn(BaseModel):
    name: str
    health_path: str | None = None
    health_timeout: int | None = None


class AppPatch(BaseModel):
    health_path: str | None = None
    health_timeout: int | None = None


class DeployIn(BaseModel):
    image: str
    username: str | None = None
    password: str | None = None


class RollbackIn(BaseModel):
    version: int | None = None


class ConfigPatch(BaseModel):
    vars: dict[str, str | None] = Field(default_factory=dict)


class ProcessPatch(BaseModel):
    count: int | None = None
    size: str | None = None


class AutoscaleIn(BaseModel):
    min: int
    max: int
    cpu_percent: int = 70


class MemberIn(BaseModel):
    role: str


class DomainIn(BaseModel):
    hostname: str


def release_dict(r: Release, current: int | None = None) -> dict[str, Any]:
    return {
        "version": r.version,
        "name": f"v{r.version}",
        "image": r.image,
        "image_digest": r.image_digest,
        "description": r.description,
        "created_by": r.created_by,
        "created_at": r.created_at.isoformat(),
        "config_keys": sorted(r.config),
        "process_types": sorted(r.processes),
        "formation": r.formation,
        "current": r.version == current,
    }


def audit_dict(a: AuditEvent) -> dict[str, Any]:
    return {"actor": a.actor, "action": a.action, "target": a.target, "detail": a.detail,
            "created_at": a.created_at.isoformat()}


class CheckOut(BaseModel):
    group: str
    name: str
    status: str = Field(description="pass, warn or fail")
    detail: str = Field(description="what was seen")
    why: str = Field(description="why it matters")
    fix: str = Field(description="what to do when it does not pass")


class DoctorOut(BaseModel):
    space: str
    app: str | None = None
    status: str = Field(description="the worst status of the checks")
    checks: list[CheckOut]

    @classmethod
    def of(cls, space: str, app: str | None, checks: list[Check]) -> DoctorOut:
        return cls(space=space, app=app, status=worst(checks),
                   checks=[CheckOut(**dataclasses.asdict(c)) for c in checks])
