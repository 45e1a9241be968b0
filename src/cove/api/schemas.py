"""Request bodies and response shapes of the REST API."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, Field

from cove.domain.checks import Check, worst
from cove.domain.models import AuditEvent, Release
from cove.domain.names import MAX_NAME, NAME_PATTERN
from cove.services.accounts import MIN_PASSWORD
from cove.services.apps import MAX_HEALTH_TIMEOUT


def _documents(default: Any = ..., **schema: Any) -> Any:
    """Describe a rule in the OpenAPI document that the domain enforces (with a message
    that says what to do), without a second check here that would answer differently."""
    return Field(default, json_schema_extra=schema)


# The one name rule (domain.names), as the document tells clients.
NAME = _documents(pattern=NAME_PATTERN, maxLength=MAX_NAME,
                  description="lowercase letters, digits and single hyphens, starting with a "
                              "letter; some names are reserved")
HEALTH_PATH = _documents(None, pattern="^/[^ ]*$", maxLength=255)
HEALTH_TIMEOUT = _documents(None, minimum=1, maximum=MAX_HEALTH_TIMEOUT)


class SignupIn(BaseModel):
    name: str = NAME
    password: str = _documents(minLength=MIN_PASSWORD)


class LoginIn(BaseModel):
    name: str
    password: str
    description: str = "cli"


class SpaceIn(BaseModel):
    name: str = NAME
    pool: str | None = None


class AppIn(BaseModel):
    name: str = NAME
    health_path: str | None = HEALTH_PATH
    health_timeout: int | None = HEALTH_TIMEOUT


class AppPatch(BaseModel):
    health_path: str | None = HEALTH_PATH
    health_timeout: int | None = HEALTH_TIMEOUT


class DeployIn(BaseModel):
    image: str
    username: str | None = None
    password: str | None = None


MAX_INT = 2**31 - 1  # versions, numbers and counts are 32-bit in the store


class RollbackIn(BaseModel):
    version: int | None = Field(None, ge=1, le=MAX_INT)


class ConfigPatch(BaseModel):
    vars: dict[str, str | None] = Field(default_factory=dict)


class ProcessPatch(BaseModel):
    count: int | None = Field(None, ge=0, le=10_000)
    size: str | None = None


class AutoscaleIn(BaseModel):
    min: int = Field(ge=0, le=10_000)
    max: int = Field(ge=1, le=10_000)
    cpu_percent: int = Field(70, ge=1, le=100)


class MemberIn(BaseModel):
    role: str


class DomainIn(BaseModel):
    hostname: str


# -- responses ----------------------------------------------------------------------------

class ErrorBody(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. not_found")
    message: str = Field(description="what went wrong and what to do next")


class ErrorOut(BaseModel):
    """Every error, whatever its status: one envelope."""

    error: ErrorBody


class PasswordIn(BaseModel):
    current: str
    new: str = _documents(minLength=MIN_PASSWORD)


class PasswordOut(BaseModel):
    tokens_ended: int = Field(description="your other API tokens, ended with the change")


class TokenInfoOut(BaseModel):
    id: int
    description: str
    created_at: str
    expires_at: str


class SignupOut(BaseModel):
    user: str
    space: str = Field(description="the new user's personal space")


class TokenOut(BaseModel):
    token: str


class SpaceRoleOut(BaseModel):
    name: str
    role: str


class MeOut(BaseModel):
    name: str
    is_admin: bool
    spaces: list[SpaceRoleOut]


class MemberOut(BaseModel):
    user: str
    role: str


class SizeOut(BaseModel):
    name: str
    memory_mb: int
    cpu_millis: int
    pids: int


class LimitsOut(BaseModel):
    default_size: str
    max_size: str
    sizes: dict[str, SizeOut]


class QuotaOut(BaseModel):
    apps: int
    instances: int
    memory_mb: int
    cpu_millis: int
    builds: int


class UsageOut(BaseModel):
    apps: int
    instances: int
    memory_mb: int
    cpu_millis: int


class NetworkOut(BaseModel):
    default: str
    allow_same_space: bool
    allow_from_router: bool
    allow_dns: bool


class SecurityOut(BaseModel):
    profile: str
    run_as_uid: int


class SpaceOut(BaseModel):
    name: str
    role: str = Field(description="your role in it")
    created_at: str
    pool: str
    quota: QuotaOut
    usage: UsageOut
    limits: LimitsOut
    network: NetworkOut
    security: SecurityOut
    members: list[MemberOut]


class AuditOut(BaseModel):
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    created_at: str


class AutoscaleOut(BaseModel):
    min: int
    max: int
    cpu_percent: int


class ProcessOut(BaseModel):
    count: int
    size: str
    autoscale: AutoscaleOut | None = None


class HealthCheckOut(BaseModel):
    path: str
    timeout: int


class InstanceOut(BaseModel):
    name: str = Field(description="process.index, e.g. web.1")
    process: str
    state: str = Field(description="up, starting, crashed, exited, ...")
    release: str
    exit_code: int | None
    started_at: str | None


class AppOut(BaseModel):
    name: str
    space: str
    url: str
    release: str | None
    image: str | None
    image_digest: str | None
    health_check: HealthCheckOut
    formation: dict[str, ProcessOut]
    process_types: list[str]
    release_command: str | None
    domains: list[str]
    instances: list[InstanceOut]
    created_at: str


class ReleaseOut(BaseModel):
    version: int
    name: str = Field(description="v1, v2, ...")
    image: str
    image_digest: str
    description: str
    created_by: str
    created_at: str
    config_keys: list[str]
    process_types: list[str]
    formation: dict[str, Any]
    current: bool
    url: str | None = None


class ConfigOut(BaseModel):
    config: dict[str, str]
    release: str | None = Field(description="the release the change made, if deployed")


class BuildOut(BaseModel):
    number: int
    status: str
    builder: str
    release: str | None
    error: str
    created_by: str
    created_at: str
    finished_at: str | None


class StackOut(BaseModel):
    role: str
    image: str
    id: str | None
    created: str | None = None
    size_mb: int | None = None


class DomainOut(BaseModel):
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
