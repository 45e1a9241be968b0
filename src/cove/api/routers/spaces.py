"""Spaces: quota, members, audit log and the platform's readiness checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from cove.api.deps import ERRORS, Ctx, Me
from cove.api.schemas import (
    AuditOut,
    DoctorOut,
    MemberIn,
    MemberOut,
    QuotaOut,
    SpaceIn,
    SpaceOut,
    audit_dict,
)
from cove.domain.roles import Role
from cove.services import doctor, spaces

router = APIRouter(prefix="/v1/spaces", tags=["spaces"], responses=ERRORS)


def _space(ctx: Ctx, user: Me, name: str) -> SpaceOut:
    return SpaceOut.model_validate(spaces.show_space(ctx, user, name).as_dict())


@router.get("")
def list_spaces(ctx: Ctx, user: Me) -> list[SpaceOut]:
    return [_space(ctx, user, s.name) for s, _ in spaces.list_spaces(ctx, user)]


@router.post("", status_code=201)
def create_space(ctx: Ctx, body: SpaceIn, user: Me) -> SpaceOut:
    space = spaces.create_space(ctx, user, body.name, body.pool)
    return _space(ctx, user, space.name)


@router.get("/{space}")
def show_space(ctx: Ctx, space: str, user: Me) -> SpaceOut:
    return _space(ctx, user, space)


@router.delete("/{space}", status_code=204)
def destroy_space(ctx: Ctx, space: str, user: Me) -> Response:
    spaces.destroy_space(ctx, user, space)
    return Response(status_code=204)


@router.put("/{space}/quota")
def set_quota(ctx: Ctx, space: str, body: dict[str, int], user: Me) -> QuotaOut:
    """Change a space's quota (platform admins)."""
    return QuotaOut.model_validate(spaces.set_quota(ctx, user, space, body).as_dict())


@router.get("/{space}/members")
def members(ctx: Ctx, space: str, user: Me) -> list[MemberOut]:
    view = spaces.show_space(ctx, user, space)
    return [MemberOut(user=n, role=r.label) for n, r in view.members]


@router.put("/{space}/members/{member}")
def set_member(ctx: Ctx, space: str, member: str, body: MemberIn, user: Me) -> MemberOut:
    role = Role.parse(body.role)
    spaces.set_member(ctx, user, space, member, role)
    return MemberOut(user=member, role=role.label)


@router.delete("/{space}/members/{member}", status_code=204)
def remove_member(ctx: Ctx, space: str, member: str, user: Me) -> Response:
    spaces.remove_member(ctx, user, space, member)
    return Response(status_code=204)


@router.get("/{space}/audit")
def audit(ctx: Ctx, space: str, user: Me,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditOut]:
    found = spaces.audit_log(ctx, user, space, limit)
    return [AuditOut.model_validate(audit_dict(a)) for a in found]


@router.get("/{space}/doctor")
def space_doctor(ctx: Ctx, space: str, user: Me) -> DoctorOut:
    """The production-readiness checklist of the platform this space runs on."""
    return DoctorOut.of(space, None, doctor.space_report(ctx, user, space))
