"""Rendering is pure: the nginx config and podman arguments, compared with snapshots.

Set UPDATE_SNAPSHOTS=1 to rewrite them after an intended change, then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

from cove.adapters.router.nginx.render import RouterConfig, backends_of, render
from cove.adapters.runtime.local.spec import env_file_text, run_args
from cove.ports.router import Route
from cove.ports.runtime import InstanceSpec

SNAPSHOTS = Path(__file__).parent / "snapshots"


def matches(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text)
    assert text == path.read_text()


SPEC = InstanceSpec(space="alice", app="hello", app_id=7, process="web", index=2, release=3,
                    image="127.0.0.1:5000/hello@sha256:" + "a" * 64, command=None,
                    env={"PORT": "8000", "GREETING": "hi\nthere"}, memory_mb=128,
                    cpu_millis=250, pids=128, run_as_uid=10001, tmp_size_mb=64)


def test_nginx_config() -> None:
    config = RouterConfig(prefix="/state/router", listen="127.0.0.1:8080",
                          api_backend="127.0.0.1:8081", api_hosts=("localhost", "127.0.0.1"))
    routes = [Route(2, ("idle-bob.localhost",), ()),
              Route(1, ("hello-alice.localhost", "www.example.test"),
                    ("10.89.0.2:8000", "10.89.0.3:8000"))]
    matches("nginx.conf", render(config, routes))
    # What a restarted broker reads back as carrying traffic: the apps' backends only.
    assert backends_of(render(config, routes)) == {"10.89.0.2:8000", "10.89.0.3:8000"}


def test_podman_run_arguments() -> None:
    args = run_args("abc123", SPEC, Path("/tmp/env"), Path("/logs/7/web.2-v3.log"))
    matches("podman-run.txt", "\n".join(args) + "\n")
    for flag in ("--cap-drop=all", "--read-only", "--init", "no-new-privileges"):
        assert flag in args
    assert "--privileged" not in args and "--network=host" not in args


def test_env_values_cannot_inject_extra_variables() -> None:
    text = env_file_text({"A": "1\nINJECTED=1", "B": "2"})
    assert text.splitlines() == ["A=1 INJECTED=1", "B=2"]


def test_fingerprint_changes_with_what_needs_a_new_instance() -> None:
    from dataclasses import replace

    assert replace(SPEC, index=5).fingerprint == SPEC.fingerprint
    for change in ({"memory_mb": 256}, {"env": {"PORT": "8000"}}, {"image": "other"}):
        assert replace(SPEC, **change).fingerprint != SPEC.fingerprint  # type: ignore[arg-type]


def test_kubernetes_space_and_app_manifests() -> None:
    import yaml

    from cove.adapters.runtime.kubernetes.render import (
        AppSpec,
        ProcessSpec,
        SpaceSpec,
        admission_policies,
        app_manifests,
        cluster_roles,
        space_manifests,
    )
    from cove.domain.models import Autoscale
    from cove.domain.roles import Role
    from cove.domain.template import parse_template
    from cove.settings import DEFAULT_TEMPLATE

    template = parse_template(yaml.safe_load(DEFAULT_TEMPLATE.read_text()))
    space = space_manifests(SpaceSpec("alice", template, (("alice", Role.ADMIN),
                                                          ("bob", Role.VIEWER))))
    app = app_manifests(AppSpec(
        space="alice", app="hello", release=3, image="registry.test/hello@sha256:" + "a" * 64,
        config={"GREETING": "hi"}, processes=(
            ProcessSpec("web", None, 2, template.sizes["small"]),
            ProcessSpec("worker", ["/hello", "work"], 1, template.sizes["standard"],
                        Autoscale(1, 4, 60))),
        hostnames=("hello-alice.localhost", "www.example.test"), health_path="/healthz"))
    class Plain(yaml.SafeDumper):
        def ignore_aliases(self, data: object) -> bool:
            return True  # write shared lists out in full: the snapshot is for reading

    text = yaml.dump_all([*cluster_roles(), *admission_policies(), *space, *app], Dumper=Plain,
                         sort_keys=True)
    matches("kubernetes.yaml", text)
    for role in cluster_roles():
        verbs = {v for rule in role["rules"] for v in rule["verbs"]}
        assert not verbs & {"escalate", "bind", "impersonate", "*"}
        writable = {r for rule in role["rules"] if set(rule["verbs"]) & {"create", "patch"}
                    for r in rule["resources"]}
        assert not writable & {"resourcequotas", "limitranges", "networkpolicies",
                               "rolebindings", "roles", "namespaces", "ingresses",
                               "httproutes", "services", "endpoints", "endpointslices"}
