"""The multi-tenancy benchmark's checks (kubernetes-sigs/multi-tenancy, "MTB", profile
level 1), run as each kind of space member with the credentials Cove's RoleBindings grant,
against the real control plane.

Every attempt is a server-side dry run: it passes authorization and every admission plugin
(Pod Security, Cove's admission policies, quota) exactly as a real write would, and leaves
nothing behind. A positive control shows each refusal is for the reason checked: the same
member's compliant pod is admitted (developers and admins).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from lightkube import ApiError, Client
from lightkube.codecs import from_dict
from lightkube.resources.core_v1 import (
    LimitRange,
    Namespace,
    Node,
    PersistentVolume,
    Pod,
    ResourceQuota,
    Secret,
)
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.resources.rbac_authorization_v1 import ClusterRole, RoleBinding

from cove.adapters.runtime.kubernetes.cluster import KubernetesCluster
from cove.adapters.runtime.kubernetes.render import SpaceSpec, namespace_of
from cove.domain.roles import Role
from cove.domain.template import parse_template
from cove.settings import DEFAULT_TEMPLATE
from tests.support.k8s import ControlPlane, role_binding

TEMPLATE = parse_template(yaml.safe_load(DEFAULT_TEMPLATE.read_text()))
ROLES = (Role.ADMIN, Role.DEVELOPER, Role.VIEWER)


@dataclass
class Tenant:
    role: Role
    client: Client  # the member's own credentials
    ns: str  # their space's namespace
    other: str  # another tenant's namespace
    binding: str  # the RoleBinding that makes them a member


@pytest.fixture(scope="module")
def tenants(control_plane: ControlPlane) -> Iterator[dict[Role, Tenant]]:
    cluster = KubernetesCluster(control_plane.admin())
    run = uuid.uuid4().hex[:6]
    other = f"mtbother{run}"
    cluster.provision_space(SpaceSpec(other, TEMPLATE, ((f"o{run}", Role.ADMIN),)))
    made, out = [other], {}
    for role in ROLES:
        space, user = f"mtb-{role.name.lower()}-{run}", f"m-{role.name.lower()}-{run}"
        cluster.provision_space(SpaceSpec(space, TEMPLATE, ((user, role),)))
        made.append(space)
        out[role] = Tenant(role, control_plane.user(f"cove:{user}"), namespace_of(space),
                           namespace_of(other), f"cove-member-{user}")
    yield out
    for space in made:
        cluster.remove_space(space)


def pod(ns: str, *, security: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """A pod that passes every rule of the space, changed by `security` and `spec`."""
    container = {"name": "app", "image": "registry.test/x:1",
                 "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
                 "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                     "allowPrivilegeEscalation": False,
                                     "capabilities": {"drop": ["ALL"]},
                                     "seccompProfile": {"type": "RuntimeDefault"},
                                     **(security or {})}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"mtb-{uuid.uuid4().hex[:6]}", "namespace": ns},
            "spec": {"containers": [container], "serviceAccountName": "cove-app", **spec}}


def create(client: Client, manifest: dict[str, Any]) -> None:
    client.create(from_dict(manifest), dry_run=True)


def with_volume(t: Tenant, volume: dict[str, Any]) -> dict[str, Any]:
    manifest = pod(t.ns, volumes=[{"name": "v", **volume}])
    manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "v", "mountPath": "/v"}]
    return manifest


def with_ports(t: Tenant, ports: list[dict[str, Any]]) -> dict[str, Any]:
    manifest = pod(t.ns)
    manifest["spec"]["containers"][0]["ports"] = ports
    return manifest


# MTB check id -> what a tenant attempts. Each must be refused (403 or 422).
CHECKS: dict[str, Callable[[Tenant], object]] = {
    # Control-plane isolation: cluster-scoped objects and other tenants.
    "block access to cluster resources: nodes": lambda t: list(t.client.list(Node)),
    "block access to cluster resources: namespaces": lambda t: list(t.client.list(Namespace)),
    "block access to cluster resources: persistent volumes":
        lambda t: list(t.client.list(PersistentVolume)),
    "block access to cluster resources: cluster roles": lambda t: create(t.client, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "mtb-all"}, "rules": [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
    "block multitenant resources: create a namespace": lambda t: create(t.client, {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mtb-mine"}}),
    "block access to other tenant resources: read": lambda t: list(
        t.client.list(Secret, namespace=t.other)),
    "block access to other tenant resources: write": lambda t: create(
        t.client, pod(t.other)),
    # Tenant-scoped guard rails.
    "block modification of resource quotas": lambda t: t.client.patch(
        ResourceQuota, "cove-quota", {"spec": {"hard": {"pods": "1000"}}}, namespace=t.ns),
    "block modification of limit ranges": lambda t: t.client.delete(
        LimitRange, "cove-limits", namespace=t.ns),
    "block network policy changes": lambda t: t.client.delete(
        NetworkPolicy, "default-deny", namespace=t.ns),
    "block network policy creation": lambda t: create(t.client, {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all", "namespace": t.ns},
        "spec": {"podSelector": {}, "ingress": [{}], "egress": [{}]}}),
    "block role binding changes": lambda t: create(t.client, role_binding(
        t.ns, "mtb", "cove-admin", "cove:friend")),
    "block escalation to cluster-admin": lambda t: create(t.client, role_binding(
        t.ns, "mtb", "cluster-admin", "cove:friend")),
    "block role creation": lambda t: create(t.client, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "mtb", "namespace": t.ns},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
    "block changes to own role binding": lambda t: t.client.delete(
        RoleBinding, t.binding, namespace=t.ns),
    "block node port services": lambda t: create(t.client, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "np", "namespace": t.ns},
        "spec": {"type": "NodePort", "selector": {"a": "b"}, "ports": [{"port": 80}]}}),
    # Workload isolation (Pod Security "restricted" and Cove's policies).
    "block privileged containers": lambda t: create(t.client, pod(
        t.ns, security={"privileged": True, "allowPrivilegeEscalation": True})),
    "block privilege escalation": lambda t: create(t.client, pod(
        t.ns, security={"allowPrivilegeEscalation": True})),
    "block add capabilities": lambda t: create(t.client, pod(
        t.ns, security={"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}})),
    "require run as non-root user": lambda t: create(t.client, pod(
        t.ns, security={"runAsNonRoot": False, "runAsUser": 0})),
    "block host pid": lambda t: create(t.client, pod(t.ns, hostPID=True)),
    "block host ipc": lambda t: create(t.client, pod(t.ns, hostIPC=True)),
    "block host network": lambda t: create(t.client, pod(t.ns, hostNetwork=True)),
    "block host ports": lambda t: create(t.client, with_ports(
        t, [{"containerPort": 80, "hostPort": 80}])),
    "block host path volumes": lambda t: create(t.client, with_volume(
        t, {"hostPath": {"path": "/"}})),
    "block existing persistent volumes (claims over quota)": lambda t: create(
        t.client, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": "mtb", "namespace": t.ns},
                   "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "any",
                            "resources": {"requests": {"storage": "1Gi"}}}}),
    "block the node's own placement": lambda t: create(t.client, pod(t.ns, nodeName="x")),
    "block platform priority": lambda t: create(t.client, pod(
        t.ns, priorityClassName="system-node-critical")),
    "block tolerations of platform taints": lambda t: create(t.client, pod(
        t.ns, tolerations=[{"operator": "Exists"}])),
    "block API tokens in pods": lambda t: create(t.client, pod(
        t.ns, serviceAccountName="default")),
}


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name.lower())
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_a_member_cannot(tenants: dict[Role, Tenant], role: Role, check: str) -> None:
    tenant = tenants[role]
    with pytest.raises(ApiError) as err:
        CHECKS[check](tenant)
    assert err.value.status.code in (403, 422), err.value.status.message


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name.lower())
def test_what_a_member_may_do(tenants: dict[Role, Tenant], role: Role) -> None:
    """The positive control: members read their space; developers and admins run
    compliant pods in it. Viewers write nothing."""
    tenant = tenants[role]
    assert isinstance(list(tenant.client.list(Pod, namespace=tenant.ns)), list)
    if role is Role.VIEWER:
        with pytest.raises(ApiError) as err:
            create(tenant.client, pod(tenant.ns))
        assert err.value.status.code == 403
        with pytest.raises(ApiError):
            list(tenant.client.list(Secret, namespace=tenant.ns))
    else:
        create(tenant.client, pod(tenant.ns))
        assert isinstance(list(tenant.client.list(Secret, namespace=tenant.ns)), list)
    with pytest.raises(ApiError):
        tenant.client.get(ClusterRole, "cove-admin")
