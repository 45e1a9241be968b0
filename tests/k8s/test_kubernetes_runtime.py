"""The Kubernetes runtime against the real control plane: secure spaces and apps."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import yaml
from lightkube import ApiError, Client
from lightkube.codecs import from_dict
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import (
    LimitRange,
    Namespace,
    Pod,
    ResourceQuota,
    Secret,
    Service,
    ServiceAccount,
)
from lightkube.resources.networking_v1 import Ingress, NetworkPolicy
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.resources.rbac_authorization_v1 import RoleBinding

from cove.adapters.runtime.kubernetes.cluster import KubernetesCluster
from cove.adapters.runtime.kubernetes.render import (
    AppSpec,
    ProcessSpec,
    SpaceSpec,
    namespace_of,
)
from cove.domain.errors import DeployFailed
from cove.domain.roles import Role
from cove.domain.sizes import Size
from cove.domain.template import parse_template
from cove.settings import DEFAULT_TEMPLATE
from tests.support.k8s import ControlPlane, role_binding

TEMPLATE = parse_template(yaml.safe_load(DEFAULT_TEMPLATE.read_text()))
SMALL = TEMPLATE.sizes["small"]


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> KubernetesCluster:
    cluster = KubernetesCluster(control_plane.admin())
    cluster.ensure_cluster_roles()
    return cluster


@pytest.fixture
def space(cluster: KubernetesCluster) -> Iterator[Callable[..., str]]:
    made: list[str] = []

    def make(*members: tuple[str, Role]) -> str:
        name = f"s{uuid.uuid4().hex[:8]}"
        cluster.provision_space(SpaceSpec(name, TEMPLATE, tuple(members)))
        made.append(name)
        return name

    yield make
    for name in made:
        cluster.remove_space(name)


def app_spec(space: str, release: int = 1, web: int = 1, size: Size = SMALL,
             config: dict[str, str] | None = None) -> AppSpec:
    return AppSpec(space=space, app="hello", release=release,
                   image="registry.test/hello@sha256:" + "a" * 64,
                   config=config or {"GREETING": f"v{release}"},
                   processes=(ProcessSpec("web", None, web, size),),
                   hostnames=(f"hello-{space}.apps.test",), health_path="/healthz",
                   health_timeout=20)


def test_a_space_is_a_secured_namespace(cluster: KubernetesCluster,
                                        space: Callable[..., str]) -> None:
    name = space(("alice", Role.DEVELOPER))
    ns = namespace_of(name)
    client = cluster.client
    labels = client.get(Namespace, ns).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["app.kubernetes.io/managed-by"] == "cove"
    hard = client.get(ResourceQuota, "cove-quota", namespace=ns).spec.hard
    # the template's 20 instances and 4096 MB, plus room for a rolling update's surge
    assert hard["services.nodeports"] == "0" and hard["pods"] == "25"
    assert hard["limits.memory"] == "5Gi"  # the server normalises 5120Mi
    assert client.get(LimitRange, "cove-limits", namespace=ns).spec.limits[0].max["memory"] \
        == "512Mi"
    policies = {p.metadata.name for p in client.list(NetworkPolicy, namespace=ns)}
    assert policies == {"default-deny", "allow-same-space", "allow-from-router", "allow-dns"}
    assert client.get(ServiceAccount, "cove-app", namespace=ns) \
        .automountServiceAccountToken is False
    binding = client.get(RoleBinding, "cove-member-alice", namespace=ns)
    assert binding.roleRef.name == "cove-developer"
    assert all(b.roleRef.kind == "ClusterRole" for b in client.list(RoleBinding, namespace=ns))


def test_reprovisioning_an_unchanged_space_writes_nothing(cluster: KubernetesCluster,
                                                          space: Callable[..., str]) -> None:
    name = space(("alice", Role.ADMIN))
    spec = SpaceSpec(name, TEMPLATE, (("alice", Role.ADMIN),))
    assert cluster.provision_space(spec) == 0
    changed = replace(spec, members=(("alice", Role.ADMIN), ("bob", Role.VIEWER)))
    assert cluster.provision_space(changed) == 1


def as_user(control_plane: ControlPlane, name: str) -> Client:
    """The cluster user a Cove member `name` is bound as."""
    return control_plane.user(f"cove:{name}")


def pod_manifest(ns: str, name: str, **security: object) -> dict[str, object]:
    container: dict[str, object] = {
        "name": "app", "image": "registry.test/x:1",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}, **security},
        "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [container], "serviceAccountName": "cove-app"}}


def refused(client: Client, manifest: dict[str, object], dry_run: bool = False) -> str:
    with pytest.raises(ApiError) as err:
        client.create(from_dict(manifest), dry_run=dry_run)
    assert err.value.status.code in (403, 422), err.value.status.message
    return str(err.value.status.message)


def test_members_are_confined_to_their_space(control_plane: ControlPlane,
                                             cluster: KubernetesCluster,
                                             space: Callable[..., str]) -> None:
    mine = namespace_of(space(("dev1", Role.DEVELOPER)))
    theirs = namespace_of(space(("other", Role.ADMIN)))
    dev = as_user(control_plane, "dev1")
    dev.create(from_dict(pod_manifest(mine, "ok")))  # a compliant pod in her own space
    for attempt in (lambda: list(dev.list(Pod, namespace=theirs)),
                    lambda: dev.get(Secret, "x", namespace=theirs),
                    lambda: dev.create(from_dict(pod_manifest(theirs, "sneaky")))):
        with pytest.raises(ApiError) as err:
            attempt()
        assert err.value.status.code == 403
    refused(dev, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                  "metadata": {"name": f"grab-{uuid.uuid4().hex[:6]}"},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                              "name": "cluster-admin"},
                  "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                "name": "dev1"}]})


def test_members_cannot_loosen_their_guard_rails(control_plane: ControlPlane,
                                                 space: Callable[..., str]) -> None:
    ns = namespace_of(space(("boss", Role.ADMIN)))
    boss = as_user(control_plane, "boss")  # even the space's admin
    patches = [
        (ResourceQuota, "cove-quota", {"spec": {"hard": {"pods": "1000"}}}),
        (LimitRange, "cove-limits", {"spec": {"limits": []}}),
        (NetworkPolicy, "default-deny", {"spec": {"policyTypes": []}}),
        (RoleBinding, "cove-member-boss", {"roleRef": {"name": "admin"}}),
    ]
    for res, name, patch in patches:
        with pytest.raises(ApiError) as err:
            boss.patch(res, name, patch, namespace=ns)
        assert err.value.status.code == 403, res
    with pytest.raises(ApiError) as label:
        boss.patch(Namespace, ns, {"metadata": {"labels": {
            "pod-security.kubernetes.io/enforce": "privileged"}}})
    assert label.value.status.code == 403
    with pytest.raises(ApiError) as bind:
        boss.create(from_dict(role_binding(ns, "more", "cove-admin", "cove:friend")))
    assert bind.value.status.code == 403


def test_dangerous_workloads_are_refused_by_the_cluster(control_plane: ControlPlane,
                                                        space: Callable[..., str]) -> None:
    ns = namespace_of(space(("dev2", Role.DEVELOPER)))
    dev = as_user(control_plane, "dev2")
    assert "privileged" in refused(dev, pod_manifest(ns, "p1", privileged=True))
    assert "runAsNonRoot" in refused(dev, pod_manifest(ns, "p2", runAsNonRoot=False,
                                                       runAsUser=0))
    host_path = pod_manifest(ns, "p3")
    host_path["spec"]["volumes"] = [{"name": "h", "hostPath": {"path": "/"}}]  # type: ignore[index]
    assert "hostPath" in refused(dev, host_path)
    host_net = pod_manifest(ns, "p4")
    host_net["spec"]["hostNetwork"] = True  # type: ignore[index]
    assert "host namespaces" in refused(dev, host_net)
    node_port = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np",
                                                                    "namespace": ns},
                 "spec": {"type": "NodePort", "selector": {"a": "b"},
                          "ports": [{"port": 80}]}}
    assert "ClusterIP" in refused(control_plane.admin(), node_port)


def test_an_app_rolls_out_to_ready_instances(cluster: KubernetesCluster,
                                             space: Callable[..., str]) -> None:
    name = space()
    ns = namespace_of(name)
    spec = app_spec(name, web=2)
    cluster.deploy(spec, None, timeout=90)
    client = cluster.client
    dep = client.get(Deployment, "hello-web", namespace=ns)
    assert dep.status.readyReplicas == 2
    assert dep.metadata.annotations["cove.dev/release"] == "v1"
    pod_spec = dep.spec.template.spec
    container = pod_spec.containers[0]
    assert container.securityContext.readOnlyRootFilesystem is True
    assert container.securityContext.capabilities.drop == ["ALL"]
    assert pod_spec.automountServiceAccountToken is False
    assert container.readinessProbe.httpGet.path == "/healthz"
    assert container.resources.limits == {"cpu": "250m", "memory": "128Mi"}
    assert client.get(Service, "hello", namespace=ns).spec.type == "ClusterIP"
    assert client.get(Ingress, "hello", namespace=ns).spec.rules[0].host == \
        f"hello-{name}.apps.test"
    assert client.get(PodDisruptionBudget, "hello", namespace=ns).spec.maxUnavailable == 1
    assert client.get(Secret, "hello-v1-env", namespace=ns).immutable is True
    assert cluster.apply([], "nothing") == 0
    before = cluster.counters.writes
    cluster.deploy(spec, None, timeout=30)  # unchanged: nothing written
    assert cluster.counters.writes == before


def test_a_rollout_that_never_becomes_ready_keeps_the_old_release(
        cluster: KubernetesCluster, space: Callable[..., str]) -> None:
    name = space()
    ns = namespace_of(name)
    good = app_spec(name, release=1)
    cluster.deploy(good, None, timeout=90)
    # Bigger than the space's limit range allows: its pods are never admitted.
    bad = app_spec(name, release=2, size=Size("huge", 100_000, 100))
    with pytest.raises(DeployFailed, match="did not become ready"):
        cluster.deploy(bad, good, timeout=8)
    dep = cluster.client.get(Deployment, "hello-web", namespace=ns)
    assert dep.metadata.annotations["cove.dev/release"] == "v1"
    cluster.wait_rollout(good, 60)
    assert dep.status.readyReplicas == 1


def test_a_removed_app_leaves_nothing(cluster: KubernetesCluster,
                                      space: Callable[..., str]) -> None:
    name = space()
    spec = app_spec(name, web=2)
    cluster.deploy(spec, None, timeout=90)
    cluster.remove_app(name, "hello")
    ns = namespace_of(name)
    for res in (Deployment, Service, Ingress, PodDisruptionBudget, Secret):
        assert [o for o in cluster.client.list(res, namespace=ns,
                                               labels={"cove.dev/app": "hello"})] == []


HTTPROUTE_CRD = {
    # A minimal stand-in for the Gateway API's CRD: the real API server stores and serves
    # HTTPRoutes with it; no gateway controller runs in the test cluster either way.
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "httproutes.gateway.networking.k8s.io", "annotations": {
        # *.k8s.io groups need this; the Gateway API's own CRDs carry the same annotation
        "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/2466"}},
    "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
             "names": {"plural": "httproutes", "singular": "httproute", "kind": "HTTPRoute",
                       "listKind": "HTTPRouteList"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                 "openAPIV3Schema": {"type": "object",
                                     "x-kubernetes-preserve-unknown-fields": True}}}]}}


def gateway_cluster(admin: Client) -> KubernetesCluster:
    """A cluster routing through a Gateway, once the HTTPRoute CRD is served."""
    import time

    from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

    from cove.adapters.runtime.kubernetes.render import Gateway

    try:
        admin.create(from_dict(HTTPROUTE_CRD))
    except ApiError as err:
        assert err.status.code == 409  # already there from an earlier run
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        crd = admin.get(CustomResourceDefinition, "httproutes.gateway.networking.k8s.io")
        if any(c.type == "Established" and c.status == "True"
               for c in (crd.status.conditions or [])):
            break
        time.sleep(0.2)
    return KubernetesCluster(admin, gateway=Gateway("cove", "gateway-system"))


def test_apps_can_be_routed_with_gateway_api_httproutes(control_plane: ControlPlane,
                                                        space: Callable[..., str]) -> None:
    from cove.adapters.runtime.kubernetes.cluster import HTTPRoute

    admin = control_plane.admin()
    cluster = gateway_cluster(admin)
    name = space()
    ns = namespace_of(name)
    cluster.deploy(app_spec(name), None, timeout=90)
    route = admin.get(HTTPRoute, "hello", namespace=ns)
    assert route.spec["hostnames"] == [f"hello-{name}.apps.test"]
    assert route.spec["parentRefs"] == [{"name": "cove", "namespace": "gateway-system"}]
    assert route.spec["rules"][0]["backendRefs"] == [{"name": "hello", "port": 80}]
    assert list(admin.list(Ingress, namespace=ns)) == []
    cluster.remove_app(name, "hello")
    assert list(admin.list(HTTPRoute, namespace=ns)) == []


def service(ns: str, name: str, **spec: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"port": 80}], **spec}}


def test_tenants_cannot_write_what_routes_traffic(control_plane: ControlPlane,
                                                  space: Callable[..., str]) -> None:
    """A developer wrote Ingresses for another tenant's hostname, and a selector-less
    Service with Endpoints at another tenant's pod (CVE-2021-25740): Cove writes these
    from the space's own claims; tenants only read them."""
    ns = namespace_of(space(("dev3", Role.ADMIN)))
    dev = as_user(control_plane, "dev3")
    hijack = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
              "metadata": {"name": "hijack", "namespace": ns},
              "spec": {"rules": [{"host": "victim-other.apps.test", "http": {"paths": [{
                  "path": "/", "pathType": "Prefix", "backend": {"service": {
                      "name": "x", "port": {"number": 80}}}}]}}]}}
    endpoints = {"apiVersion": "v1", "kind": "Endpoints",
                 "metadata": {"name": "x", "namespace": ns},
                 "subsets": [{"addresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 80}]}]}
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": "x-1", "namespace": ns,
                           "labels": {"kubernetes.io/service-name": "x"}},
              "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.9"]}]}
    for manifest in (hijack, service(ns, "x"), endpoints, slice_):
        with pytest.raises(ApiError) as err:
            dev.create(from_dict(manifest))
        assert err.value.status.code == 403, manifest["kind"]
    assert list(dev.list(Ingress, namespace=ns)) == []  # reading is still allowed


def ingress(ns: str, name: str, *hosts: str, **extra: object) -> dict[str, object]:
    meta = {"name": name, "namespace": ns, **extra.pop("metadata", {})}  # type: ignore[dict-item]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": {"ingressClassName": "nginx", "rules": [
                {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                                                   "backend": {"service": {
                                                       "name": name, "port": {"number": 80}}}}]}}
                for host in hosts], **extra}}


def test_routes_name_only_the_hostnames_their_app_claims(
        control_plane: ControlPlane, cluster: KubernetesCluster,
        space: Callable[..., str]) -> None:
    """Tenants created Ingresses for another tenant's hostname, a wildcard, rules without a
    host, a default backend, snippet annotations and another class, and added a foreign host
    to Cove's own Ingress. Whoever writes now (a cluster admin here), the cluster admits
    only the hostnames Cove claimed for that app."""
    cluster.ensure_cluster_roles()
    victim, mine = space(), space()
    cluster.deploy(app_spec(victim), None, timeout=90)
    cluster.deploy(app_spec(mine), None, timeout=90)
    ns, admin = namespace_of(mine), control_plane.admin()
    theirs = f"hello-{victim}.apps.test"
    own = f"hello-{mine}.apps.test"
    # Each attempt breaks one rule only: those after the first three name the app whose
    # claim holds `own` (admitted, they would be refused as a duplicate instead).
    attempts = {
        "another tenant's host": (ingress(ns, "hijack", theirs), "claims"),
        "another tenant's host, under the app's name": (ingress(ns, "hello", own, theirs),
                                                        "claims"),
        "a wildcard": (ingress(ns, "wild", "*.apps.test"), "claims"),
        "no host": ({**ingress(ns, "hello", own), "spec": {"rules": [{"http": {"paths": [{
            "path": "/", "pathType": "Prefix", "backend": {"service": {
                "name": "hello", "port": {"number": 80}}}}]}}]}}, "claims"),
        "a default backend": (ingress(ns, "hello", own, defaultBackend={"service": {
            "name": "hello", "port": {"number": 80}}}), "default backend"),
        "a snippet": (ingress(ns, "hello", own, metadata={"annotations": {
            "nginx.ingress.kubernetes.io/server-snippet": "location / { proxy_pass x; }"}}),
            "annotations"),
        "another class": ({**ingress(ns, "hello", own),
                           "spec": {**ingress(ns, "hello", own)["spec"],  # type: ignore[dict-item]
                                    "ingressClassName": "other"}}, "class"),
        "another tenant's TLS host": (ingress(ns, "hello", own, tls=[{"hosts": [theirs]}]),
                                      "TLS hosts"),
    }
    for what, (manifest, rule) in attempts.items():
        assert rule in refused(admin, manifest, dry_run=True), what
    with pytest.raises(ApiError) as added:
        admin.patch(Ingress, "hello", {"spec": {"rules": [
            {"host": own}, {"host": theirs}]}}, namespace=ns)
    assert "claims" in str(added.value.status.message)
    assert "Endpoints" in refused(admin, service(ns, "noselector"))
    # Removing the app takes its claim with it.
    cluster.remove_app(mine, "hello")
    assert "hosts.cove.dev/hello" not in (admin.get(Namespace, ns).metadata.annotations or {})


def test_httproutes_name_only_the_hostnames_their_app_claims(
        control_plane: ControlPlane, space: Callable[..., str]) -> None:
    """The same for HTTPRoutes, on a pool that routes through the Gateway API."""
    admin = control_plane.admin()
    cluster = gateway_cluster(admin)
    victim, mine = space(), space()
    cluster.deploy(app_spec(victim), None, timeout=90)
    cluster.deploy(app_spec(mine), None, timeout=90)
    ns = namespace_of(mine)
    theirs, own = f"hello-{victim}.apps.test", f"hello-{mine}.apps.test"

    def route(name: str, *hosts: str, **meta: object) -> dict[str, object]:
        return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": name, "namespace": ns, **meta},
                "spec": {"parentRefs": [{"name": "cove", "namespace": "gateway-system"}],
                         "hostnames": list(hosts),
                         "rules": [{"backendRefs": [{"name": "hello", "port": 80}]}]}}

    attempts = {  # as for Ingresses: each breaks one rule, under a claimed name if it can
        "another tenant's host": (route("hijack", theirs), "claims"),
        "another tenant's host, under the app's name": (route("hello", own, theirs), "claims"),
        "no hostnames (every host the Gateway serves)": (route("hello"), "claims"),
        "a router annotation": (route("hello", own, annotations={
            "konghq.com/plugins": "steal"}), "annotations"),
    }
    for what, (manifest, rule) in attempts.items():
        assert rule in refused(admin, manifest, dry_run=True), what


def test_cluster_policies_hold_whoever_writes(control_plane: ControlPlane,
                                              space: Callable[..., str]) -> None:
    """Admission policies bound to every space's namespace: they refuse even a cluster
    admin (and so any role an operator grants by mistake)."""
    ns = namespace_of(space(("dev4", Role.DEVELOPER)))
    dev, admin = as_user(control_plane, "dev4"), control_plane.admin()
    assert "externalIPs" in refused(admin, service(ns, "ext", externalIPs=["10.1.2.3"]))
    assert "ClusterIP" in refused(admin, service(
        ns, "alias", type="ExternalName", externalName="kubernetes.default.svc"))
    token = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
             "metadata": {"name": "forever", "namespace": ns,
                          "annotations": {"kubernetes.io/service-account.name": "cove-app"}}}
    assert "never expire" in refused(dev, token)

    def pod(name: str, **spec: object) -> dict[str, object]:
        manifest = pod_manifest(ns, name)
        manifest["spec"].update(spec)  # type: ignore[attr-defined]
        return manifest

    assert "priority" in refused(dev, pod("prio", priorityClassName="system-node-critical"))
    assert "tolerate" in refused(dev, pod("tol", tolerations=[{"operator": "Exists"}]))
    assert "tolerate" in refused(dev, pod("tol2", tolerations=[{
        "key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]))
    assert "nodeName" in refused(dev, pod("pinned", nodeName="kwok-node-0"))
    assert "automountServiceAccountToken" in refused(dev, pod("sa", serviceAccountName="default"))
    assert "tokens" in refused(dev, pod("projected", volumes=[{"name": "t", "projected": {
        "sources": [{"serviceAccountToken": {"path": "token"}}]}}]))
    dev.create(from_dict(pod("fine", automountServiceAccountToken=False,
                             serviceAccountName="default")))


def test_object_counts_are_bounded(control_plane: ControlPlane,
                                   space: Callable[..., str]) -> None:
    """500 ConfigMaps of 1 MB in 3 s filled etcd for everyone: a space has a count quota."""
    from cove.adapters.runtime.kubernetes.render import CONFIGMAPS

    ns = namespace_of(space(("dev5", Role.DEVELOPER)))
    dev = as_user(control_plane, "dev5")
    made = 0
    with pytest.raises(ApiError) as err:
        for n in range(CONFIGMAPS + 1):
            dev.create(from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": f"c{n}", "namespace": ns},
                                  "data": {"k": "v"}}))
            made += 1
    assert err.value.status.code == 403 and "exceeded quota" in err.value.status.message
    # At most the quota (the namespace's own kube-root-ca.crt counts too once the
    # controller manager has made it, which on a loaded machine may come later).
    assert made <= CONFIGMAPS


WORKLOADS = {
    # kind: (quota key, a minimal object of that kind named NAME in NS)
    "PodDisruptionBudget": ("count/poddisruptionbudgets.policy", {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"x": "NAME"}}}}),
    "HorizontalPodAutoscaler": ("count/horizontalpodautoscalers.autoscaling", {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": "NAME"}, "minReplicas": 1, "maxReplicas": 2}}),
    "Deployment": ("count/deployments.apps", {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "spec": {"replicas": 0, "selector": {"matchLabels": {"x": "NAME"}},
                 "template": {"metadata": {"labels": {"x": "NAME"}}, "spec": {
                     "containers": [{"name": "c", "image": "registry.test/x:1"}]}}}}),
}


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_workload_counts_are_bounded(control_plane: ControlPlane, space: Callable[..., str],
                                     kind: str) -> None:
    """Only ConfigMaps, Secrets, Jobs, CronJobs and StatefulSets were counted: a member
    could make Deployments (each with its ReplicaSets), autoscalers and disruption budgets
    without end. A space holds what its template lets Cove make, and a few more."""
    ns = namespace_of(space(("dev7", Role.DEVELOPER)))
    dev = as_user(control_plane, "dev7")
    key, body = WORKLOADS[kind]
    made = 0
    with pytest.raises(ApiError) as err:
        for n in range(200):
            name = f"w{n}"
            manifest = yaml.safe_load(yaml.safe_dump(body).replace("NAME", name))
            dev.create(from_dict({**manifest, "metadata": {"name": name, "namespace": ns}}))
            made += 1
    assert err.value.status.code == 403 and "exceeded quota" in err.value.status.message
    hard = control_plane.admin().get(ResourceQuota, "cove-quota", namespace=ns).spec.hard
    assert made == int(hard[key])


def test_drift_of_every_kind_is_undone(control_plane: ControlPlane, cluster: KubernetesCluster,
                                       space: Callable[..., str]) -> None:
    """Drift repair compared only a hash Cove wrote and the replica count: a changed image,
    securityContext or service account stayed, an injected sidecar survived, a swapped
    config Secret carrying the copied hash was kept. Each is now undone by one pass."""
    from lightkube.resources.admissionregistration_v1 import ValidatingAdmissionPolicy
    from lightkube.resources.rbac_authorization_v1 import ClusterRole

    from cove.ports.pool import SpaceState

    name = space(("ann", Role.DEVELOPER))
    ns = namespace_of(name)
    spec = app_spec(name)
    state = SpaceState(name, TEMPLATE, (("ann", Role.DEVELOPER),))
    cluster.deploy(spec, None, timeout=90)
    admin = control_plane.admin()

    def container() -> object:
        return admin.get(Deployment, "hello-web", namespace=ns).spec.template.spec

    def repaired() -> None:
        assert cluster.reconcile([spec], [state]) >= 1
        assert cluster.reconcile([spec], [state]) == 0  # and nothing more to do

    sidecar = {"name": "thief", "image": "registry.test/thief:1", "envFrom": [
        {"secretRef": {"name": "hello-v1-env"}}]}
    template_drifts = [
        {"containers": [{"name": "web", "image": "registry.test/evil:1"}]},
        {"containers": [{"name": "web", "securityContext": {"readOnlyRootFilesystem": False}}]},
        {"serviceAccountName": "default", "automountServiceAccountToken": True},
        {"containers": [sidecar]},
        {"containers": [{"name": "web", "resources": {"limits": {"memory": "2Gi"}}}]},
    ]
    for drift in template_drifts:
        admin.patch(Deployment, "hello-web", {"spec": {"template": {"spec": drift}}},
                    namespace=ns)
        repaired()
        pod = container()
        assert [c.name for c in pod.containers] == ["web"], drift
        assert pod.containers[0].image == spec.image
        assert pod.containers[0].securityContext.readOnlyRootFilesystem is True
        assert pod.serviceAccountName == "cove-app" and not pod.automountServiceAccountToken
        assert pod.containers[0].resources.limits["memory"] == "128Mi"

    # A swapped config Secret that copies Cove's labels and annotations.
    secret = admin.get(Secret, "hello-v1-env", namespace=ns)
    admin.delete(Secret, "hello-v1-env", namespace=ns)
    admin.create(Secret.from_dict({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "hello-v1-env", "namespace": ns,
                     "labels": secret.metadata.labels,
                     "annotations": secret.metadata.annotations},
        "stringData": {"GREETING": "pwned", "EXTRA": "1"}}))
    repaired()
    restored = admin.get(Secret, "hello-v1-env", namespace=ns)
    assert restored.data == secret.data and restored.immutable is True

    # The Service pointed at another app's pods; the guard rails of the space loosened.
    admin.patch(Service, "hello", {"spec": {"selector": {"cove.dev/app": "other"}}},
                namespace=ns)
    admin.patch(ResourceQuota, "cove-quota", {"spec": {"hard": {"pods": "1000"}}}, namespace=ns)
    admin.patch(NetworkPolicy, "default-deny", {"spec": {"policyTypes": ["Egress"]}},
                namespace=ns)
    admin.patch(Namespace, ns, {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "privileged"}}})
    admin.delete(Ingress, "hello", namespace=ns)
    repaired()
    assert admin.get(Service, "hello", namespace=ns).spec.selector["cove.dev/app"] == "hello"
    assert admin.get(ResourceQuota, "cove-quota", namespace=ns).spec.hard["pods"] == "25"
    assert admin.get(NetworkPolicy, "default-deny", namespace=ns).spec.policyTypes == \
        ["Ingress", "Egress"]
    assert admin.get(Namespace, ns).metadata.labels[
        "pod-security.kubernetes.io/enforce"] == "restricted"
    assert admin.get(Ingress, "hello", namespace=ns).spec.rules[0].host == spec.hostnames[0]

    # Access: a grant of Cove's member roles made behind Cove's back goes, a member's binding
    # pointed at someone else comes back, the operator's own bindings stay; Cove's
    # cluster-wide roles and policies are restored too.
    def binding(name: str, role: str, user: str) -> RoleBinding:
        return RoleBinding.from_dict(role_binding(ns, name, role, user))

    admin.create(binding("backdoor", "cove-admin", "cove:mallory"))
    admin.create(binding("operators-own", "view", "auditor"))
    admin.patch(RoleBinding, "cove-member-ann", {"subjects": [{
        "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "cove:mallory"}]},
        namespace=ns)
    admin.patch(ClusterRole, "cove-developer", {"rules": [{
        "apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]})
    admin.delete(ValidatingAdmissionPolicy, "cove-pods")
    repaired()
    names = {b.metadata.name for b in admin.list(RoleBinding, namespace=ns)}
    assert names == {"cove-member-ann", "operators-own"}
    assert admin.get(RoleBinding, "cove-member-ann", namespace=ns).subjects[0].name == "cove:ann"
    verbs = {v for r in admin.get(ClusterRole, "cove-developer").rules for v in r.verbs}
    assert "*" not in verbs
    assert admin.get(ValidatingAdmissionPolicy, "cove-pods").spec.validations


def test_cluster_wide_grants_of_coves_roles_are_undone(
        control_plane: ControlPlane, cluster: KubernetesCluster,
        space: Callable[..., str]) -> None:
    """A ClusterRoleBinding to a member role, made behind Cove's back, granted it in every
    namespace and was never pruned. The next pass deletes it; the operator's own
    ClusterRoleBindings to other roles stay."""
    from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding

    from cove.ports.pool import SpaceState

    name = space()
    ns = namespace_of(name)
    admin, tag = control_plane.admin(), uuid.uuid4().hex[:6]

    def grant(binding: str, role: str) -> str:
        manifest = {**role_binding("", f"{binding}-{tag}", role, f"cove:mallory-{tag}"),
                    "kind": "ClusterRoleBinding"}
        manifest["metadata"] = {"name": f"{binding}-{tag}"}
        admin.create(from_dict(manifest))
        return f"{binding}-{tag}"

    backdoor, own = grant("backdoor", "cove-developer"), grant("operators-own", "view")
    mallory = as_user(control_plane, f"mallory-{tag}")
    list(mallory.list(Secret, namespace=ns))  # a stranger reads the space's Secrets
    try:
        assert cluster.reconcile([], [SpaceState(name, TEMPLATE, ())]) >= 1
        with pytest.raises(ApiError) as gone:
            admin.get(ClusterRoleBinding, backdoor)
        assert gone.value.status.code == 404
        assert admin.get(ClusterRoleBinding, own).roleRef.name == "view"
        with pytest.raises(ApiError) as denied:
            list(mallory.list(Secret, namespace=ns))
        assert denied.value.status.code == 403
    finally:
        admin.delete(ClusterRoleBinding, own)


def test_an_autoscaled_process_keeps_the_count_its_autoscaler_chose(
        cluster: KubernetesCluster, space: Callable[..., str]) -> None:
    from cove.domain.models import Autoscale

    name = space()
    ns = namespace_of(name)
    spec = replace(app_spec(name), processes=(
        ProcessSpec("web", None, 1, SMALL, Autoscale(1, 4, 60)),))
    cluster.deploy(spec, None, timeout=90)
    cluster.client.patch(Deployment, "hello-web", {"spec": {"replicas": 3}}, namespace=ns)
    assert cluster.reconcile([spec]) == 0
    assert cluster.client.get(Deployment, "hello-web", namespace=ns).spec.replicas == 3


def test_members_are_the_clusters_users_under_coves_prefix(
        control_plane: ControlPlane, space: Callable[..., str]) -> None:
    """A cluster identity named like a Cove member (another system's "dev6") gets nothing:
    members are bound as cove:NAME."""
    ns = namespace_of(space(("dev6", Role.ADMIN)))
    assert list(as_user(control_plane, "dev6").list(Pod, namespace=ns)) == []
    with pytest.raises(ApiError) as err:
        list(control_plane.user("dev6").list(Pod, namespace=ns))
    assert err.value.status.code == 403


def test_doctor_sees_drift_that_is_not_repaired_yet(cluster: KubernetesCluster,
                                                   space: Callable[..., str]) -> None:
    """Between two reconcile passes, `cove doctor` judges the namespace as the cluster holds
    it: a lost Pod Security label fails the admission check."""
    name = space()
    cluster.client.patch(Namespace, namespace_of(name), {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "privileged"}}})
    checks = {c.name: c for c in cluster.space_checks(name)}
    assert checks["admission"].status == "fail"
    assert "privileged" in checks["admission"].detail


def test_server_doctor_fails_a_pool_whose_spaces_lack_admission_policies(
        cluster: KubernetesCluster, space: Callable[..., str]) -> None:
    """A deleted admission policy was only a warning in `cove-server doctor`, while every
    space on the pool went without that guard rail until the next reconcile pass."""
    from lightkube.resources.admissionregistration_v1 import ValidatingAdmissionPolicy

    space()
    cluster.client.delete(ValidatingAdmissionPolicy, "cove-secrets")
    try:
        checks = {c.name: c for c in cluster.preflight()}
    finally:
        cluster.ensure_cluster_roles()
    check = checks["pool kubernetes admission policies"]
    assert check.status == "fail" and "cove-secrets" in check.detail, check
    assert {c.name: c for c in cluster.preflight()}[check.name].status == "pass"
