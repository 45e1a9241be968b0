"""The issue's user story, start to finish, through the CLI, checked over HTTP."""

from __future__ import annotations

import json
import time

import httpx

from tests.support.cove import CliUser, CoveServer, hammering
from tests.support.services import Registry, wait_until


def ps(user: CliUser, app: str) -> list[dict[str, str]]:
    return json.loads(user.run("ps", app, "--json").stdout)  # type: ignore[no-any-return]


def test_the_user_story(cove: CoveServer, registry: Registry) -> None:
    image = f"{registry.host}/examples/hello:1"
    alice = cove.user("alice")
    alice.signup()
    assert "Logged in as alice" in alice.run("login", "alice", "--password-stdin",
                                             input="password123\n").stdout
    assert "hello-alice.localhost" in alice.run("apps", "create", "hello").stdout
    assert "Released v1" in alice.run("deploy", "hello", image).stdout
    host = "hello-alice.localhost"
    answer = cove.app_get(host)
    assert answer.status_code == 200 and "release=v1" in answer.text

    assert [(i["name"], i["state"]) for i in ps(alice, "hello")] == [("web.1", "up")]
    alice.run("scale", "hello", "web=3")
    assert [i["state"] for i in ps(alice, "hello")] == ["up", "up", "up"]
    served_by = {cove.app_get(host).text.split("instance=")[1].strip() for _ in range(12)}
    assert len(served_by) == 3

    with hammering(cove, host) as stats:
        assert "released v2" in alice.run("config", "set", "hello", "GREETING=hi").stdout
        time.sleep(0.5)
    assert stats["failed"] == 0 and stats["ok"] > 10
    assert cove.app_get(host).text.startswith("hi from hello release=v2")
    # The change answered once v2 served; v1's instances drain and stop meanwhile.
    serving = [i for i in ps(alice, "hello") if i["state"] != "stopping"]
    assert [(i["state"], i["release"]) for i in serving] == [("up", "v2")] * 3
    wait_until(lambda: len(ps(alice, "hello")) == 3, 30, "v1's instances to stop")
    assert "3 replaced instance(s) drained and stopped" in alice.run("logs", "hello").stdout

    releases = json.loads(alice.run("releases", "hello", "--json").stdout)
    assert [(r["name"], r["current"]) for r in releases] == [("v2", True), ("v1", False)]
    alice.run("rollback", "hello", "v1")
    assert cove.app_get(host).text.startswith("hello from hello release=v3")
    assert json.loads(alice.run("config", "hello", "--json").stdout) == {}

    cove.app_get(host, "/marker-for-logs")
    wait_until(lambda: "GET /marker-for-logs" in alice.run("logs", "hello").stdout, 10, "logs")
    with alice.following("logs", "hello", "-f", "-n", "0") as next_line:
        cove.app_get(host, "/streamed-line")
        # (Cove's own events interleave: the rollback's old instances stop meanwhile.)
        lines = [next_line()]
        while not any("GET /streamed-line" in line for line in lines) and len(lines) < 5:
            lines.append(next_line())
        [line] = [line for line in lines if "GET /streamed-line" in line]
        assert "web." in line

    alice.run("domains", "add", "hello", "www.example.test")
    assert cove.app_get("www.example.test").text.startswith("hello from hello")
    assert "www.example.test" in alice.run("domains", "hello").stdout

    bob = cove.user("bob")
    bob.signup()
    alice.run("spaces", "create", "team-x")
    alice.run("members", "add", "team-x", "bob", "--role", "developer")
    assert {s["name"] for s in json.loads(bob.run("spaces", "--json").stdout)} == {
        "bob", "team-x"}
    bob.run("apps", "create", "shop", "--space", "team-x")
    bob.run("deploy", "shop", image, "--space", "team-x")
    assert cove.app_get("shop-team-x.localhost").status_code == 200
    space = json.loads(alice.run("spaces", "info", "team-x", "--json").stdout)
    assert space["usage"]["instances"] == 1 and space["quota"]["instances"] == 20

    audit = json.loads(alice.run("audit", "--json").stdout)
    assert {"app.deploy", "config.set", "app.rollback", "app.scale", "domain.add"} <= {
        a["action"] for a in audit}

    alice.run("apps", "destroy", "hello")
    assert cove.app_get(host).status_code == 404
    assert cove.app_get("www.example.test").status_code == 404
    assert "no app named 'hello'" in alice.run("ps", "hello", ok=False).stderr


def test_bad_input_gets_clear_errors_and_leaves_nothing(cove: CoveServer,
                                                        registry: Registry) -> None:
    carol = cove.user("carol")
    carol.signup()
    assert "invalid app name" in carol.run("apps", "create", "Bad_Name", ok=False).stderr
    carol.run("apps", "create", "web")
    assert "already exists" in carol.run("apps", "create", "web", ok=False).stderr
    missing = carol.run("deploy", "web", f"{registry.host}/examples/hello:nope", ok=False)
    assert "does not exist" in missing.stderr
    down = carol.run("deploy", "web", "registry.invalid:5000/examples/hello:1", ok=False)
    assert "unreachable" in down.stderr
    # a registry on this machine that the operator did not list is not even asked
    local = carol.run("deploy", "web", "127.0.0.1:9/examples/hello:1", ok=False)
    assert "COVE_LOCAL_REGISTRIES" in local.stderr
    assert json.loads(carol.run("releases", "web", "--json").stdout) == []
    assert "deploy it before scaling" in carol.run("scale", "web", "web=2", ok=False).stderr

    carol.run("deploy", "web", f"{registry.host}/examples/hello:1")
    assert "no process type 'worker'" in carol.run("scale", "web", "worker=1", ok=False).stderr
    over = carol.run("scale", "web", "web=21", ok=False)
    assert "quota" in over.stderr and "instances" in over.stderr
    assert len(ps(carol, "web")) == 1

    # A release whose health check never passes fails; the old one keeps serving.
    carol.run("apps", "update", "web", "--health-path", "/healthz", "--health-timeout", "3")
    failed = carol.run("config", "set", "web", "FAIL_HEALTH=1", ok=False)
    assert "never became healthy" in failed.stderr
    assert cove.app_get("web-carol.localhost").text.startswith("hello from web release=v1")
    assert [i["release"] for i in ps(carol, "web")] == ["v1"]
    assert len(json.loads(carol.run("releases", "web", "--json").stdout)) == 1
    assert "FAIL_HEALTH" not in carol.run("config", "web").stdout

    # An app that dies while starting is reported at once, with its exit code and last
    # words: the deploy does not sit out its (long) health timeout.
    carol.run("apps", "update", "web", "--health-timeout", "240")
    died = carol.run("config", "set", "web", "EXIT_AT_START=4", ok=False, timeout=120)
    assert "exited with code 4" in died.stderr
    assert "cannot start: EXIT_AT_START=4 is set" in died.stderr
    assert cove.app_get("web-carol.localhost").text.startswith("hello from web release=v1")


def test_private_images_deploy_with_credentials(cove: CoveServer,
                                                private_registry: Registry) -> None:
    erin = cove.user("erin")
    erin.signup()
    erin.run("apps", "create", "secret")
    image = f"{private_registry.host}/team/hello:1"
    anonymous = erin.run("deploy", "secret", image, ok=False)
    assert "refused by its registry" in anonymous.stderr
    wrong = erin.run("deploy", "secret", image, "--username", "deployer", "--password-stdin",
                     input="not-it\n", ok=False)
    assert "check the credentials" in wrong.stderr
    erin.run("deploy", "secret", image, "--username", "deployer", "--password-stdin",
             input="s3cret-pass\n")
    assert cove.app_get("secret-erin.localhost").status_code == 200
    with erin.api() as api:  # the password is used for the pull, never stored or shown
        assert "s3cret-pass" not in api.get("/v1/spaces/erin/apps/secret/releases").text


def test_the_api_describes_itself(cove: CoveServer) -> None:
    spec = httpx.get(f"{cove.url}/openapi.json").json()
    assert spec["info"]["title"] == "Cove"
    assert "/v1/spaces/{space}/apps/{app}/deploys" in spec["paths"]
