"""The same API and CLI drive a Kubernetes pool: a space on the real control plane."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightkube import ApiError
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, ResourceQuota, Secret
from lightkube.resources.networking_v1 import Ingress
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding, RoleBinding

from tests.support.apps import dockerfile_app
from tests.support.cove import CoveServer
from tests.support.k8s import ControlPlane, role_binding
from tests.support.services import Registry, wait_until

NS = "cove-team-k8s"


@pytest.fixture(scope="module")
def team(kcove: CoveServer) -> str:
    """A team space on the Kubernetes pool, made by the platform admin."""
    kcove.user("operator").run("spaces", "create", "team-k8s", "--pool", "k8s")
    return "team-k8s"


def deployment(control_plane: ControlPlane, name: str) -> Deployment:
    return control_plane.admin().get(Deployment, name, namespace=NS)


def test_a_space_and_an_app_on_kubernetes(kcove: CoveServer, control_plane: ControlPlane,
                                          registry: Registry, team: str) -> None:
    admin, kim = kcove.user("operator"), kcove.user("kim")
    kim.signup()
    refused = kim.run("spaces", "create", "kim-k8s", "--pool", "k8s", ok=False)
    assert "only the platform admin" in refused.stderr
    admin.run("members", "add", "team-k8s", "kim", "--role", "developer")
    client = control_plane.admin()
    labels = client.get(Namespace, NS).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert client.get(RoleBinding, "cove-member-kim", namespace=NS).roleRef.name == \
        "cove-developer"
    info = json.loads(kim.run("spaces", "info", "team-k8s", "--json").stdout)
    assert info["pool"] == "k8s"

    s = ("--space", "team-k8s")
    kim.run("apps", "create", "web", *s)
    assert "Released v1" in kim.run("deploy", "web", f"{registry.host}/examples/hello:1",
                                    *s).stdout
    dep = deployment(control_plane, "web-web")
    assert dep.status.readyReplicas == 1
    assert dep.spec.template.spec.containers[0].image.startswith(
        f"{registry.host}/examples/hello@sha256:")
    ps = json.loads(kim.run("ps", "web", "--json", *s).stdout)
    assert [(i["name"], i["state"], i["release"]) for i in ps] == [("web.1", "up", "v1")]

    kim.run("scale", "web", "web=3", *s)
    assert deployment(control_plane, "web-web").status.readyReplicas == 3
    assert client.get(PodDisruptionBudget, "web", namespace=NS).spec.maxUnavailable == 1

    assert "released v2" in kim.run("config", "set", "web", "GREETING=hi", *s).stdout
    assert deployment(control_plane, "web-web").metadata.annotations["cove.dev/release"] == "v2"
    secret = client.get(Secret, "web-v2-env", namespace=NS)
    assert secret.data is not None and "GREETING" in secret.data
    kim.run("rollback", "web", "v1", *s)
    dep = deployment(control_plane, "web-web")
    assert dep.metadata.annotations["cove.dev/release"] == "v3"
    assert dep.status.readyReplicas == 3  # the formation survives

    kim.run("domains", "add", "web", "shop.example.test", *s)
    hosts = [r.host for r in client.get(Ingress, "web", namespace=NS).spec.rules]
    assert hosts == ["web-team-k8s.apps.k8s.test", "shop.example.test"]  # the pool's domain
    info = json.loads(kim.run("apps", "info", "web", "--json", *s).stdout)
    assert info["url"] == "http://web-team-k8s.apps.k8s.test/"
    taken = kim.run("domains", "add", "web", "other-team.apps.k8s.test", *s, ok=False)
    assert "Cove's own domain" in taken.stderr

    over = kim.run("scale", "web", "web=21", *s, ok=False)
    assert "quota" in over.stderr
    assert deployment(control_plane, "web-web").spec.replicas == 3

    kim.run("apps", "destroy", "web", *s)
    with pytest.raises(ApiError) as gone:
        client.get(Deployment, "web-web", namespace=NS)
    assert gone.value.status.code == 404


def test_drift_in_the_cluster_is_repaired(kcove: CoveServer, control_plane: ControlPlane,
                                          registry: Registry, team: str) -> None:
    """The running server's reconciler undoes each kind of drift by itself; the time each
    took is printed (the pool's pass interval is 1 s here, 30 s by default)."""
    admin = kcove.user("operator")
    s = ("--space", "team-k8s")
    admin.run("apps", "create", "steady", *s)
    admin.run("deploy", "steady", f"{registry.host}/examples/hello:1", *s)
    client = control_plane.admin()
    image = deployment(control_plane, "steady-web").spec.template.spec.containers[0].image

    def template() -> Any:
        return deployment(control_plane, "steady-web").spec.template.spec

    def patch_template(spec: dict[str, Any]) -> None:
        client.patch(Deployment, "steady-web", {"spec": {"template": {"spec": spec}}},
                     namespace=NS)

    secret = client.get(Secret, "steady-v1-env", namespace=NS)

    def swap_secret() -> None:
        client.delete(Secret, "steady-v1-env", namespace=NS)
        client.create(Secret.from_dict({
            "apiVersion": "v1", "kind": "Secret", "metadata": {
                "name": "steady-v1-env", "namespace": NS, "labels": secret.metadata.labels,
                "annotations": secret.metadata.annotations},
            "stringData": {"STOLEN": "1"}}))

    def grant() -> None:
        client.create(RoleBinding.from_dict(role_binding(NS, "backdoor", "cove-admin",
                                                         "cove:mallory")))

    def bindings() -> set[str]:
        return {b.metadata.name for b in client.list(RoleBinding, namespace=NS)}

    def grant_everywhere() -> None:
        client.create(ClusterRoleBinding.from_dict({
            **role_binding("", "backdoor-everywhere", "cove-viewer", "cove:mallory"),
            "kind": "ClusterRoleBinding", "metadata": {"name": "backdoor-everywhere"}}))

    def cluster_bindings() -> set[str]:
        return {b.metadata.name for b in client.list(ClusterRoleBinding)}

    drifts: list[tuple[str, Callable[[], None], Callable[[], bool]]] = [
        ("replica count", lambda: client.patch(Deployment, "steady-web",
                                               {"spec": {"replicas": 0}}, namespace=NS),
         lambda: deployment(control_plane, "steady-web").spec.replicas == 1),
        ("image", lambda: patch_template({"containers": [
            {"name": "web", "image": f"{registry.host}/examples/evil:1"}]}),
         lambda: template().containers[0].image == image),
        ("injected sidecar", lambda: patch_template({"containers": [
            {"name": "thief", "image": image,
             "envFrom": [{"secretRef": {"name": "steady-v1-env"}}]}]}),
         lambda: [c.name for c in template().containers] == ["web"]),
        ("security context", lambda: patch_template({"containers": [
            {"name": "web", "securityContext": {"readOnlyRootFilesystem": False}}]}),
         lambda: template().containers[0].securityContext.readOnlyRootFilesystem is True),
        ("service account", lambda: patch_template({"serviceAccountName": "default"}),
         lambda: template().serviceAccountName == "cove-app"),
        ("swapped config secret", swap_secret,
         lambda: client.get(Secret, "steady-v1-env", namespace=NS).data == secret.data),
        ("quota raised", lambda: client.patch(ResourceQuota, "cove-quota", {
            "spec": {"hard": {"pods": "999"}}}, namespace=NS),
         lambda: client.get(ResourceQuota, "cove-quota", namespace=NS).spec.hard["pods"]
         != "999"),
        ("pod security label", lambda: client.patch(Namespace, NS, {"metadata": {"labels": {
            "pod-security.kubernetes.io/enforce": "privileged"}}}),
         lambda: client.get(Namespace, NS).metadata.labels[
             "pod-security.kubernetes.io/enforce"] == "restricted"),
        ("member role granted behind Cove's back", grant, lambda: "backdoor" not in bindings()),
        ("member role granted in every namespace", grant_everywhere,
         lambda: "backdoor-everywhere" not in cluster_bindings()),
    ]
    took = {}
    for what, drift, repaired in drifts:
        drift()
        began = time.monotonic()
        wait_until(repaired, 60, f"the reconciler to undo the {what}")
        took[what] = round(time.monotonic() - began, 2)
    print(json.dumps({"repair_seconds": took}))


def test_doctor_reads_the_cluster(kcove: CoveServer, control_plane: ControlPlane,
                                  registry: Registry, team: str) -> None:
    """`cove doctor` on a pool app judges the Deployment and the namespace as the cluster
    holds them; `cove-server doctor` checks Cove's own access to the pool."""
    admin = kcove.user("operator")
    s = ("--space", "team-k8s")
    admin.run("apps", "create", "checked", *s)
    admin.run("deploy", "checked", f"{registry.host}/examples/hello:1", *s)
    admin.run("scale", "checked", "web=2", *s)
    proc = admin.run("doctor", "checked", "--json", *s)
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    for name in ("admission", "quota enforced by the cluster", "default limits",
                 "network isolation", "non-root", "read-only root filesystem", "no privileges",
                 "requests and limits", "image pinned by digest",
                 "image running is the release's", "more than one web instance"):
        assert checks[name]["status"] == "pass", checks[name]
    assert "then probed while running" in checks["health check"]["detail"]
    assert "'k8s' pool" in checks["pool"]["detail"]

    host = subprocess.run([sys.executable, "-m", "cove.server", "doctor", "--only", "platform"],
                          env=kcove.env, capture_output=True, text=True, timeout=120)
    lines = [line for line in host.stdout.splitlines() if "pool k8s" in line]
    assert any(line.startswith("pass") and "pool k8s permissions" in line for line in lines), \
        host.stdout
    assert any(line.startswith("pass") and "pool k8s member roles" in line for line in lines)
    assert any(line.startswith("pass") and "pool k8s admission policies" in line
               for line in lines), host.stdout


def test_a_space_at_its_quota_can_still_roll_out(kcove: CoveServer, control_plane: ControlPlane,
                                                 registry: Registry) -> None:
    admin = kcove.user("operator")
    admin.run("spaces", "create", "full-k8s", "--pool", "k8s")
    admin.run("spaces", "quota", "full-k8s", "instances=2")
    s = ("--space", "full-k8s")
    admin.run("apps", "create", "busy", *s)
    admin.run("deploy", "busy", f"{registry.host}/examples/hello:1", *s)
    admin.run("scale", "busy", "web=2", *s)
    assert "quota" in admin.run("scale", "busy", "web=3", *s, ok=False).stderr
    assert "released v2" in admin.run("config", "set", "busy", "A=1", *s).stdout
    dep = control_plane.admin().get(Deployment, "busy-web", namespace="cove-full-k8s")
    assert dep.status.readyReplicas == 2


def test_autoscaling_on_kubernetes_and_not_locally(kcove: CoveServer,
                                                  control_plane: ControlPlane,
                                                  registry: Registry, team: str) -> None:
    from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler

    admin = kcove.user("operator")
    admin.run("apps", "create", "local-auto")
    admin.run("deploy", "local-auto", f"{registry.host}/examples/hello:1")
    refused = admin.run("autoscale", "local-auto", "web", "--min", "2", "--max", "4", ok=False)
    assert "not supported on the 'local' pool" in refused.stderr

    s = ("--space", "team-k8s")
    admin.run("apps", "create", "elastic", *s)
    admin.run("deploy", "elastic", f"{registry.host}/examples/hello:1", *s)
    assert "web=2..4" in admin.run("autoscale", "elastic", "web", "--min", "2", "--max", "4",
                                   *s).stdout
    hpa = control_plane.admin().get(HorizontalPodAutoscaler, "elastic-web", namespace=NS)
    assert (hpa.spec.minReplicas, hpa.spec.maxReplicas) == (2, 4)
    # the cluster's autoscaler, not Cove, now sets the count: it raises it to the minimum
    wait_until(lambda: (deployment(control_plane, "elastic-web").status.readyReplicas or 0)
               == 2, 60, "the autoscaler to reach its minimum")
    assert "autoscaled" in admin.run("scale", "elastic", "web=3", *s, ok=False).stderr
    admin.run("autoscale", "elastic", "web", "--off", *s)
    with pytest.raises(ApiError):
        control_plane.admin().get(HorizontalPodAutoscaler, "elastic-web", namespace=NS)


def test_logs_come_from_the_pods(kcove: CoveServer, control_plane: ControlPlane,
                                 registry: Registry, team: str) -> None:
    import datetime as dt

    admin = kcove.user("operator")
    s = ("--space", "team-k8s")
    admin.run("apps", "create", "chatty", *s)
    admin.run("deploy", "chatty", f"{registry.host}/examples/hello:1", *s)
    admin.run("scale", "chatty", "web=2", *s)
    out = admin.run("logs", "chatty", *s).stdout
    # kwok serves every fake container's log from one file, through the real API server
    assert "web.1: simulated container started by kwok" in out
    assert "web.2: simulated container started by kwok" in out
    assert "cove: v1 is live" in out
    with admin.following("logs", "chatty", "-f", "-n", "0", *s) as next_line:
        # Written again until the follower shows it: its streams may attach after a first
        # line (a loaded machine), and -n 0 rightly skips what came before.
        for _ in range(30):
            stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
            with (control_plane.state / "pod.log").open("a") as log:
                log.write(f"{stamp} stdout F a line written just now\n")
            try:
                line = next_line(2)
            except AssertionError:
                continue
            if "a line written just now" in line:
                break
        else:
            raise AssertionError("`cove logs -f` never showed a line the pods wrote")
        assert "web." in line


def test_source_pushed_to_a_pool_app_is_built_and_pulled_from_the_pools_registry(
        kcove: CoveServer, control_plane: ControlPlane, registry: Registry, team: str,
        tmp_path: Path) -> None:
    admin = kcove.user("operator")
    s = ("--space", team)
    admin.run("apps", "create", "built", *s)
    out = admin.run("push", "built", str(dockerfile_app(tmp_path / "src", "from source")),
                    *s).stdout
    assert f"pushing the image to {registry.host}/pool/{team}/built" in out
    assert "==> build 1 succeeded: released v1" in out
    image = deployment(control_plane, "built-web").spec.template.spec.containers[0].image
    repository, digest = image.split("@")
    assert repository == f"{registry.host}/pool/{team}/built"
    inspected = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--format",
                                "{{.Digest}}", f"docker://{image}"],
                               capture_output=True, text=True, check=True, timeout=120)
    assert inspected.stdout.strip() == digest  # the nodes can pull exactly what was built
    assert deployment(control_plane, "built-web").status.readyReplicas == 1


def can_read_secrets(control_plane: ControlPlane, user: str) -> bool:
    """What the API server answers for `user` (the bound subject) reading the space's
    Secrets: the access a member's own credentials would get."""
    from lightkube.resources.authorization_v1 import SubjectAccessReview

    review = control_plane.admin().create(SubjectAccessReview.from_dict({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": f"cove:{user}", "resourceAttributes": {
            "namespace": NS, "verb": "get", "resource": "secrets"}}}))
    return bool(review.status and review.status.allowed)


def test_removed_and_demoted_members_lose_their_cluster_access(
        kcove: CoveServer, control_plane: ControlPlane, team: str) -> None:
    """Removing a member left their RoleBinding (they still read the space's Secrets), and
    a role could never be lowered (a binding's roleRef cannot change)."""
    admin, lee = kcove.user("operator"), kcove.user("lee")
    lee.signup()
    client = control_plane.admin()
    admin.run("members", "add", team, "lee", "--role", "admin")
    assert can_read_secrets(control_plane, "lee")

    admin.run("members", "add", team, "lee", "--role", "viewer")
    binding = client.get(RoleBinding, "cove-member-lee", namespace=NS)
    assert binding.roleRef.name == "cove-viewer"
    assert not can_read_secrets(control_plane, "lee")

    admin.run("members", "add", team, "lee", "--role", "developer")
    admin.run("members", "remove", team, "lee")
    with pytest.raises(ApiError):
        client.get(RoleBinding, "cove-member-lee", namespace=NS)
    assert not can_read_secrets(control_plane, "lee")
    # The other members keep theirs.
    assert client.get(RoleBinding, "cove-member-operator", namespace=NS)
