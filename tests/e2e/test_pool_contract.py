"""The same user story behaves the same on the local pool and on a Kubernetes pool."""

from __future__ import annotations

import json

import pytest

from tests.support.cove import CoveServer
from tests.support.services import Registry


@pytest.mark.parametrize("pool", ["local", "k8s"])
def test_create_deploy_scale_config_rollback_destroy(kcove: CoveServer, registry: Registry,
                                                     pool: str) -> None:
    admin = kcove.user("operator")
    space = f"contract-{pool}"
    admin.run("spaces", "create", space, "--pool", pool)
    s = ("--space", space)

    def ps() -> list[tuple[str, str, str]]:
        """What serves: a change answers once the new release does, and the instances it
        replaced drain and stop after (shown as stopping meanwhile)."""
        found = json.loads(admin.run("ps", "app", "--json", *s).stdout)
        return [(i["name"], i["state"], i["release"]) for i in found
                if i["state"] != "stopping"]

    def releases() -> list[str]:
        return [r["name"] for r in json.loads(admin.run("releases", "app", "--json",
                                                        *s).stdout)]

    admin.run("apps", "create", "app", *s)
    assert "Released v1" in admin.run("deploy", "app", f"{registry.host}/examples/hello:1",
                                      *s).stdout
    assert ps() == [("web.1", "up", "v1")]
    admin.run("scale", "app", "web=2", *s)
    assert ps() == [("web.1", "up", "v1"), ("web.2", "up", "v1")]
    assert "released v2" in admin.run("config", "set", "app", "GREETING=hi", *s).stdout
    assert json.loads(admin.run("config", "app", "--json", *s).stdout) == {"GREETING": "hi"}
    assert ps() == [("web.1", "up", "v2"), ("web.2", "up", "v2")]
    admin.run("rollback", "app", "v1", *s)
    assert releases() == ["v3", "v2", "v1"]
    assert json.loads(admin.run("config", "app", "--json", *s).stdout) == {}
    assert {state for _, state, _ in ps()} == {"up"} and len(ps()) == 2
    info = json.loads(admin.run("spaces", "info", space, "--json").stdout)
    assert info["pool"] == pool and info["usage"]["instances"] == 2
    admin.run("apps", "destroy", "app", *s)
    assert "no app named 'app'" in admin.run("ps", "app", *s, ok=False).stderr
