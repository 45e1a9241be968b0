"""A tenant never sees or touches another tenant's objects, and cannot raise its privileges."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.apps import git
from tests.support.cove import CliUser, CoveServer
from tests.support.services import Registry


@pytest.fixture(scope="module")
def tenants(cove: CoveServer, registry: Registry) -> tuple[CliUser, CliUser, CliUser]:
    victim, attacker, viewer = cove.user("victim"), cove.user("mallory"), cove.user("vera")
    for user in (victim, attacker, viewer):
        user.signup()
    victim.run("apps", "create", "vault")
    victim.run("deploy", "vault", f"{registry.host}/examples/hello:1")
    victim.run("config", "set", "vault", "SECRET=victim-only")
    victim.run("members", "add", "victim", "vera", "--role", "viewer")
    attacker.run("apps", "create", "probe")
    return victim, attacker, viewer


APP = "/v1/spaces/victim/apps/vault"


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/v1/spaces/victim", None),
    ("GET", "/v1/spaces/victim/apps", None),
    ("GET", APP, None),
    ("GET", f"{APP}/config", None),
    ("GET", f"{APP}/logs", None),
    ("GET", f"{APP}/releases", None),
    ("GET", f"{APP}/instances", None),
    ("GET", "/v1/spaces/victim/audit", None),
    ("GET", "/v1/spaces/victim/members", None),
    ("PATCH", f"{APP}/config", {"vars": {"SECRET": "stolen"}}),
    ("POST", f"{APP}/deploys", {"image": "127.0.0.1:1/x:1"}),
    ("PATCH", f"{APP}/formation", {"web": {"count": 0}}),
    ("POST", f"{APP}/rollback", {"version": 1}),
    ("POST", f"{APP}/domains", {"hostname": "evil.example.test"}),
    ("DELETE", APP, None),
    ("DELETE", "/v1/spaces/victim", None),
    ("PUT", "/v1/spaces/victim/members/mallory", {"role": "admin"}),
    ("PUT", "/v1/spaces/victim/quota", {"apps": 1000}),
    ("POST", "/v1/spaces/victim/apps", {"name": "implant"}),
])
def test_another_tenants_objects_are_not_found(tenants: tuple[CliUser, CliUser, CliUser],
                                               method: str, path: str, body: object) -> None:
    victim, attacker, _ = tenants
    with attacker.api() as api:
        response = api.request(method, path, json=body)
    assert response.status_code == 404, response.text
    assert "victim-only" not in response.text
    assert response.json()["error"]["code"] == "not_found"
    with victim.api() as api:  # and nothing changed
        assert api.get(f"{APP}/config").json() == {"SECRET": "victim-only"}
        assert api.get(APP).json()["formation"]["web"]["count"] == 1


def test_the_router_never_sends_a_tenants_host_to_another(
        cove: CoveServer, tenants: tuple[CliUser, CliUser, CliUser]) -> None:
    _, attacker, _ = tenants
    taken = attacker.run("domains", "add", "probe", "vault-victim.localhost", ok=False)
    assert "Cove's own domain" in taken.stderr
    assert cove.app_get("vault-victim.localhost").text.startswith("hello from vault")


def test_a_viewer_can_look_but_not_deploy_change_or_read_secrets(
        tenants: tuple[CliUser, CliUser, CliUser], registry: Registry) -> None:
    _, _, viewer = tenants
    with viewer.api() as api:
        assert api.get(APP).status_code == 200
        for method, path, body in [
            ("POST", f"{APP}/deploys", {"image": f"{registry.host}/examples/hello:1"}),
            ("PATCH", f"{APP}/config", {"vars": {"X": "1"}}),
            ("GET", f"{APP}/config", None),
            ("PATCH", f"{APP}/formation", {"web": {"count": 2}}),
            ("DELETE", APP, None),
            ("PUT", "/v1/spaces/victim/members/vera", {"role": "admin"}),
            ("GET", "/v1/spaces/victim/audit", None),
            ("POST", f"{APP}/builds", None),
            ("GET", f"{APP}/builds/1/log", None),
        ]:
            response = api.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert "victim-only" not in response.text


def test_nobody_raises_their_own_quota_or_role(tenants: tuple[CliUser, CliUser, CliUser]
                                               ) -> None:
    victim, _, viewer = tenants
    refused = victim.run("spaces", "quota", "victim", "apps=1000", ok=False)
    assert "only the platform admin" in refused.stderr
    with victim.api() as api:
        assert api.get("/v1/spaces/victim").json()["quota"]["apps"] == 10
    assert viewer.run("members", "add", "victim", "vera", "--role", "admin", ok=False)
    with victim.api() as api:
        members = {m["user"]: m["role"] for m in api.get("/v1/spaces/victim/members").json()}
    assert members == {"victim": "admin", "vera": "viewer"}


def test_requests_without_a_valid_token_are_refused(cove: CoveServer) -> None:
    import httpx

    for headers in ({}, {"Authorization": "Bearer cove_forged"},
                    {"Authorization": "Basic !!!"}):
        response = httpx.get(f"{cove.url}/v1/spaces", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


def test_a_viewer_may_clone_but_not_push(cove: CoveServer, tenants: tuple[CliUser, CliUser,
                                                                            CliUser],
                                         tmp_path: Path) -> None:
    victim, attacker, viewer = tenants
    url = f"{cove.url}/git/victim/vault.git".replace("://", f"://vera:{viewer.token}@")
    git(tmp_path, "clone", "-q", url, str(tmp_path / "vault"))
    work = tmp_path / "vault"
    (work / "Dockerfile").write_text("FROM scratch\n")
    git(work, "add", ".")
    git(work, "commit", "-qm", "sneak a release in")
    refused = git(work, "push", url, "HEAD:main", ok=False)
    assert "403" in refused.stderr
    theirs = url.replace(f"vera:{viewer.token}", f"mallory:{attacker.token}")
    assert "not found" in git(work, "push", theirs, "HEAD:main", ok=False).stderr
    with victim.api() as api:
        assert api.get(f"{APP}/builds").json() == []  # no build was even started
