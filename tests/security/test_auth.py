"""Authentication holds against guessing, theft and squatting: throttled logins, tokens that
expire and can be listed and revoked, password change, closed sign-up, reserved names.

Each server here is its own: throttling counts failures per address, and every test
talks from 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cove import CoveServer, make_server


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoveServer]:
    server = make_server(tmp_path_factory.mktemp("auth"))
    server.start()
    yield server
    server.teardown()


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoveServer]:
    """Invite-only sign-up, and tokens that last three seconds."""
    server = make_server(tmp_path_factory.mktemp("closed"), COVE_SIGNUP="closed",
                         COVE_TOKEN_DAYS=str(3 / 86400))
    server.start()
    yield server
    server.teardown()


def login(server: CoveServer, name: str, password: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/tokens", json={"name": name, "password": password},
                      timeout=30)


def test_guessing_one_accounts_password_is_throttled(guarded: CoveServer) -> None:
    guarded.tenant("target")  # password123
    for _ in range(5):
        assert login(guarded, "target", "wrong-guess").status_code == 401
    refused = login(guarded, "target", "password123")  # even the right one, for now
    assert refused.status_code == 429
    assert "too many failed logins for this account" in refused.json()["error"]["message"]
    # Other accounts are not locked out by it.
    guarded.tenant("bystander")
    assert login(guarded, "bystander", "password123").status_code == 201


def test_tokens_are_listed_revoked_and_end_with_a_password_change(guarded: CoveServer) -> None:
    owner = guarded.tenant("holder")
    laptop = login(guarded, "holder", "password123").json()["token"]
    listed = owner.run("auth", "tokens", "--json").stdout
    assert listed.count('"id"') == 2  # the CLI's (made at sign-up) and the laptop's
    with httpx.Client(base_url=guarded.url, headers={"Authorization": f"Bearer {laptop}"}) as lap:
        assert lap.get("/v1/me").status_code == 200
        ids = [t["id"] for t in lap.get("/v1/tokens").json()]
        newest = max(ids)
        owner.run("auth", "revoke", str(newest))
        assert lap.get("/v1/me").status_code == 401
    # Another user's token cannot be revoked (not even found).
    other = guarded.tenant("other-holder")
    theirs = other.run("auth", "revoke", str(min(ids)), ok=False)
    assert "you have no token" in theirs.stderr
    assert owner.run("whoami").stdout.strip() == "holder"

    # A password change ends every other token; the one that made it keeps working.
    stolen = login(guarded, "holder", "password123").json()["token"]
    wrong = owner.run("auth", "passwd", "--password-stdin", input="nope\nnewpassword1\n",
                      ok=False)
    assert "current password is wrong" in wrong.stderr
    changed = owner.run("auth", "passwd", "--password-stdin",
                        input="password123\nnewpassword1\n")
    assert "other tokens ended" in changed.stdout
    assert httpx.get(f"{guarded.url}/v1/me",
                     headers={"Authorization": f"Bearer {stolen}"}).status_code == 401
    assert owner.run("whoami").stdout.strip() == "holder"
    assert login(guarded, "holder", "newpassword1").status_code == 201
    assert login(guarded, "holder", "password123").status_code == 401


@pytest.mark.parametrize("name", ["localhost", "nginx", "postgres", "kube-system", "registry",
                                  "root", "cove"])
def test_reserved_names_cannot_be_users_or_spaces(guarded: CoveServer, name: str) -> None:
    signup = httpx.post(f"{guarded.url}/v1/users",
                        json={"name": name, "password": "password123"})
    assert signup.status_code == 422 and "reserved" in signup.json()["error"]["message"]
    owner = guarded.users.get("namer") or guarded.tenant("namer")
    space = owner.run("spaces", "create", name, ok=False)
    assert "reserved" in space.stderr


def test_closed_sign_up_is_invite_only(closed: CoveServer) -> None:
    anonymous = httpx.post(f"{closed.url}/v1/users",
                           json={"name": "walkin", "password": "password123"})
    assert anonymous.status_code == 403 and "sign-up is closed" in anonymous.text
    admin = closed.admin("boss")
    with admin.api() as api:
        invited = api.post("/v1/users", json={"name": "invited", "password": "password123"})
    assert invited.status_code == 201 and invited.json()["space"] == "invited"
    assert login(closed, "invited", "password123").status_code == 201


def test_tokens_expire(closed: CoveServer, tmp_path: Path) -> None:
    closed.users.get("boss") or closed.admin("boss")
    token = login(closed, "boss", "boss-password1").json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{closed.url}/v1/me", headers=headers).status_code == 200
    expires = httpx.get(f"{closed.url}/v1/tokens", headers=headers).json()[-1]["expires_at"]
    assert expires  # every token says when it ends
    time.sleep(3.5)
    expired = httpx.get(f"{closed.url}/v1/me", headers=headers)
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]


def test_guessing_many_accounts_from_one_address_is_throttled(guarded: CoveServer) -> None:
    """Last of the module: afterwards this address may not log in to `guarded` for a while."""
    guarded.tenant("spray")
    statuses = [login(guarded, f"spray{n}", "wrong-guess").status_code for n in range(24)]
    assert statuses[0] == 401 and statuses[-1] == 429  # one failure per account at most
    refused = login(guarded, "spray", "password123")
    assert refused.status_code == 429
    assert "too many failed logins for your address" in refused.json()["error"]["message"]
