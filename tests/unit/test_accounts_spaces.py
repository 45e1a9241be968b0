from __future__ import annotations

import pytest

from cove.domain.errors import Conflict, Forbidden, Invalid, NotFound, QuotaExceeded, Unauthorized
from cove.domain.roles import Role
from cove.services import accounts, apps, spaces
from tests.unit.conftest import World


def test_signup_creates_a_personal_space_from_the_template(world: World) -> None:
    alice = world.user("alice")
    view = spaces.show_space(world.ctx, alice, "alice")
    assert view.role is Role.ADMIN
    assert view.as_dict()["quota"] == world.ctx.template.quota.as_dict()
    assert view.as_dict()["security"]["profile"] == "restricted"
    assert "alice" in world.runtime.spaces


def test_signup_refuses_duplicates_weak_passwords_and_bad_names(world: World) -> None:
    world.user("alice")
    with pytest.raises(Conflict):
        accounts.signup(world.ctx, "alice", "password123")
    with pytest.raises(Invalid, match="password"):
        accounts.signup(world.ctx, "bob", "short")
    with pytest.raises(Invalid):
        accounts.signup(world.ctx, "Bob!", "password123")
    world.ctx.settings.signup_open = False
    with pytest.raises(Forbidden):
        accounts.signup(world.ctx, "carol", "password123")


def test_tokens_authenticate_and_can_be_revoked(world: World) -> None:
    world.user("alice")
    token = accounts.login(world.ctx, "alice", "password123")
    assert accounts.authenticate(world.ctx, token).name == "alice"
    with pytest.raises(Unauthorized):
        accounts.login(world.ctx, "alice", "wrong-password")
    with pytest.raises(Unauthorized):
        accounts.login(world.ctx, "nobody", "password123")
    accounts.logout(world.ctx, token)
    with pytest.raises(Unauthorized):
        accounts.authenticate(world.ctx, token)


def test_a_stranger_gets_not_found_for_another_tenants_space(world: World) -> None:
    world.user("alice")
    bob = world.user("bob")
    for call in (lambda: spaces.show_space(world.ctx, bob, "alice"),
                 lambda: apps.create_app(world.ctx, bob, "alice", "evil"),
                 lambda: spaces.set_member(world.ctx, bob, "alice", "bob", Role.ADMIN),
                 lambda: spaces.audit_log(world.ctx, bob, "alice")):
        with pytest.raises(NotFound):
            call()
    assert [s.name for s, _ in spaces.list_spaces(world.ctx, bob)] == ["bob"]


def test_roles_limit_what_members_do(world: World) -> None:
    alice = world.user("alice")
    bob = world.user("bob")
    spaces.create_space(world.ctx, alice, "team-x")
    spaces.set_member(world.ctx, alice, "team-x", "bob", Role.VIEWER)
    assert spaces.show_space(world.ctx, bob, "team-x").role is Role.VIEWER
    with pytest.raises(Forbidden):
        apps.create_app(world.ctx, bob, "team-x", "web")
    spaces.set_member(world.ctx, alice, "team-x", "bob", Role.DEVELOPER)
    apps.create_app(world.ctx, bob, "team-x", "web")
    # a developer cannot promote themselves, nor see the audit log
    with pytest.raises(Forbidden):
        spaces.set_member(world.ctx, bob, "team-x", "bob", Role.ADMIN)
    with pytest.raises(Forbidden):
        spaces.audit_log(world.ctx, bob, "team-x")
    actions = [e.action for e in spaces.audit_log(world.ctx, alice, "team-x")]
    assert actions[:3] == ["app.create", "member.set", "member.set"]


def test_tenants_cannot_raise_their_quota_but_the_platform_admin_can(world: World) -> None:
    alice = world.user("alice")
    root = world.user("operator", admin=True)
    with pytest.raises(Forbidden):
        spaces.set_quota(world.ctx, alice, "alice", {"apps": 1000})
    assert spaces.show_space(world.ctx, alice, "alice").as_dict()["quota"]["apps"] == 10
    spaces.set_quota(world.ctx, root, "alice", {"apps": 1})
    apps.create_app(world.ctx, alice, "alice", "one")
    with pytest.raises(QuotaExceeded, match="apps"):
        apps.create_app(world.ctx, alice, "alice", "two")
    with pytest.raises(Invalid):
        spaces.set_quota(world.ctx, root, "alice", {"gpus": 1})


def test_the_last_admin_cannot_leave_and_personal_spaces_stay(world: World) -> None:
    alice = world.user("alice")
    world.user("bob")
    spaces.create_space(world.ctx, alice, "team-x")
    with pytest.raises(Conflict, match="last admin"):
        spaces.remove_member(world.ctx, alice, "team-x", "alice")
    with pytest.raises(Conflict, match="last admin"):
        spaces.set_member(world.ctx, alice, "team-x", "alice", Role.VIEWER)
    with pytest.raises(Conflict, match="personal"):
        spaces.destroy_space(world.ctx, alice, "alice")
    spaces.destroy_space(world.ctx, alice, "team-x")
    assert "team-x" not in world.runtime.spaces
    with pytest.raises(Conflict):
        spaces.create_space(world.ctx, alice, "bob")  # a user's name is their space's


def test_space_names_cannot_collide_and_are_limited_per_user(world: World) -> None:
    alice = world.user("alice")
    for n in range(world.ctx.settings.max_spaces_per_user - 1):
        spaces.create_space(world.ctx, alice, f"team-{n}")
    with pytest.raises(QuotaExceeded, match="spaces"):
        spaces.create_space(world.ctx, alice, "one-too-many")


def test_login_failures_are_throttled_per_account_and_address() -> None:
    from cove.domain.errors import RateLimited
    from cove.services.throttle import PER_ACCOUNT, PER_ADDRESS, WINDOW, LoginThrottle

    clock = [0.0]
    throttle = LoginThrottle(lambda: clock[0])
    for _ in range(PER_ACCOUNT):
        throttle.check("alice", "10.0.0.1")
        throttle.failed("alice", "10.0.0.1")
    with pytest.raises(RateLimited, match="this account"):
        throttle.check("alice", "10.0.0.9")  # from anywhere
    throttle.check("bob", "10.0.0.1")  # others are not locked out
    for n in range(PER_ADDRESS):
        throttle.failed(f"user{n}", "10.0.0.2")
    with pytest.raises(RateLimited, match="your address"):
        throttle.check("carol", "10.0.0.2")
    clock[0] += WINDOW + 1  # failures age out
    throttle.check("alice", "10.0.0.1")
    throttle.check("carol", "10.0.0.2")
