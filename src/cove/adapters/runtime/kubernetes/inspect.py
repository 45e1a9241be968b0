"""What a cluster really holds, read back for `cove doctor` and `cove-server doctor`: the
Deployments' pod templates, a space's admission labels, quota, limits and network policies,
and whether Cove's own credentials can do what it needs."""

from __future__ import annotations

import re
from typing import Any

from lightkube import ApiError, Client
from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
from lightkube.operators import exists
from lightkube.resources.admissionregistration_v1 import ValidatingAdmissionPolicy
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview
from lightkube.resources.core_v1 import LimitRange, Namespace, ResourceQuota
from lightkube.resources.networking_v1 import IngressClass, NetworkPolicy
from lightkube.resources.rbac_authorization_v1 import ClusterRole

from cove.adapters.runtime.kubernetes.render import (
    PSA,
    SPACE_LABEL,
    admission_policies,
    cluster_roles,
    namespace_of,
)
from cove.domain.checks import FAIL, PASS, WARN, Check
from cove.ports.runtime import Posture

UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6,
         "G": 10**9, "": 1}
# What Cove does in a cluster, as (verb, API group, resource): provisioning a space and
# running apps in it.
NEEDED = (("create", "", "namespaces"), ("delete", "", "namespaces"),
          ("patch", "", "namespaces"), ("list", "", "namespaces"),
          ("update", "", "resourcequotas"), ("update", "", "limitranges"),
          ("update", "", "serviceaccounts"),
          ("update", "networking.k8s.io", "networkpolicies"),
          ("delete", "networking.k8s.io", "networkpolicies"),
          ("update", "rbac.authorization.k8s.io", "rolebindings"),
          ("update", "rbac.authorization.k8s.io", "clusterroles"),
          ("delete", "rbac.authorization.k8s.io", "rolebindings"),
          ("list", "rbac.authorization.k8s.io", "clusterrolebindings"),
          ("delete", "rbac.authorization.k8s.io", "clusterrolebindings"),
          ("update", "admissionregistration.k8s.io", "validatingadmissionpolicies"),
          ("update", "admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
          ("update", "apps", "deployments"), ("update", "", "services"),
          ("update", "", "secrets"), ("delete", "", "secrets"),
          ("update", "networking.k8s.io", "ingresses"),
          ("update", "policy", "poddisruptionbudgets"),
          ("update", "autoscaling", "horizontalpodautoscalers"),
          ("list", "", "pods"), ("get", "", "pods/log"))


def memory_mb(quantity: str | None) -> int | None:
    found = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?|k)?", quantity or "")
    if not found:
        return None
    return int(float(found.group(1)) * UNITS[found.group(2) or ""] // 2**20)


def cpu_millis(quantity: str | None) -> int | None:
    found = re.fullmatch(r"(\d+(?:\.\d+)?)(m?)", quantity or "")
    if not found:
        return None
    value = float(found.group(1))
    return int(value if found.group(2) else value * 1000)


def _posture(dep: Any) -> Posture:
    pod = dep.spec.template.spec
    container = pod.containers[0]
    pod_sc, sc = pod.securityContext, container.securityContext
    uid = (sc and sc.runAsUser) or (pod_sc and pod_sc.runAsUser)
    non_root = bool((sc and sc.runAsNonRoot) or (pod_sc and pod_sc.runAsNonRoot)) \
        and uid != 0
    seccomp = (sc and sc.seccompProfile) or (pod_sc and pod_sc.seccompProfile)
    limits = (container.resources and container.resources.limits) or {}
    return Posture(
        process=(dep.metadata.labels or {}).get("cove.dev/process", container.name),
        uid=uid, non_root=non_root,
        read_only_root=bool(sc and sc.readOnlyRootFilesystem),
        no_capabilities="ALL" in ((sc and sc.capabilities and sc.capabilities.drop) or []),
        no_new_privileges=bool(sc and sc.allowPrivilegeEscalation is False),
        seccomp=bool(seccomp and seccomp.type in ("RuntimeDefault", "Localhost")),
        memory_limit_mb=memory_mb(limits.get("memory")),
        cpu_limit_millis=cpu_millis(limits.get("cpu")),
        image=container.image or "",
        health_probe=container.readinessProbe is not None)


def posture(client: Client, space: str, app: str) -> list[Posture]:
    deployments = client.list(Deployment, namespace=namespace_of(space),
                              labels={"cove.dev/app": app})
    found = []
    for dep in deployments:
        replicas = dep.status.readyReplicas if dep.status and dep.status.readyReplicas else 0
        found += [_posture(dep)] * max(replicas, 1 if dep.spec.replicas else 0)
    return found


def space_checks(client: Client, space: str) -> list[Check]:
    ns = namespace_of(space)
    try:
        namespace = client.get(Namespace, ns)
    except ApiError as err:
        if err.status.code == 404:
            return [Check("space", "namespace", FAIL, f"{ns} does not exist",
                          "the space's apps have nowhere to run",
                          "cove-server restart provisions it, or recreate the space")]
        raise
    labels = (namespace.metadata.labels if namespace.metadata else None) or {}
    enforce = labels.get(f"{PSA}/enforce")
    checks = [Check("space", "admission", PASS if enforce == "restricted" else FAIL,
                    f"Pod Security {enforce or 'not'} enforced on {ns}",
                    "a pod that asks for root, host paths or capabilities must be refused",
                    "cove-server provisions the label again on its next reconcile")]
    quotas = list(client.list(ResourceQuota, namespace=ns))
    checks.append(Check("space", "quota enforced by the cluster", PASS if quotas else FAIL,
                        f"{len(quotas)} ResourceQuota in {ns}",
                        "the cluster itself caps the space, whatever reaches it",
                        "cove-server provisions it again on its next reconcile"))
    limits = list(client.list(LimitRange, namespace=ns))
    checks.append(Check("space", "default limits", PASS if limits else FAIL,
                        f"{len(limits)} LimitRange in {ns}",
                        "every container gets requests and limits",
                        "cove-server provisions it again on its next reconcile"))
    policies: list[Any] = list(client.list(NetworkPolicy, namespace=ns))
    deny = any(p.spec.podSelector.matchLabels is None and not p.spec.ingress
               and "Ingress" in (p.spec.policyTypes or []) for p in policies)
    checks.append(Check("space", "network isolation", PASS if deny else FAIL,
                        f"default deny {'in place' if deny else 'missing'}, "
                        f"{len(policies)} NetworkPolicies in {ns}",
                        "other spaces must not reach this space's pods",
                        "cove-server provisions it again on its next reconcile"))
    return checks


def preflight(client: Client, pool: str, ingress_class: str | None) -> list[Check]:
    """Can Cove drive this cluster: reachable, allowed, its cluster roles installed?"""
    name = f"pool {pool}"
    try:
        _exists(client, Namespace, "default")
    except Exception as err:  # unreachable, refused, bad credentials: say which
        return [Check("platform", name, FAIL, f"unreachable: {str(err).splitlines()[0]}",
                      "spaces on this pool cannot be provisioned or deployed",
                      "check the kubeconfig in the pools file and that the API server is up")]
    checks = [Check("platform", name, PASS, "the API server answers",
                    "spaces on this pool are provisioned and deployed through it")]
    denied = []
    for verb, group, resource in NEEDED:
        res, _, sub = resource.partition("/")
        review = SelfSubjectAccessReview(spec=SelfSubjectAccessReviewSpec(
            resourceAttributes=ResourceAttributes(verb=verb, group=group, resource=res,
                                                  subresource=sub or None)))
        answer = client.create(review)
        if not (answer.status and answer.status.allowed):
            denied.append(f"{verb} {resource}")
    checks.append(Check("platform", f"{name} permissions", FAIL if denied else PASS,
                        f"denied: {', '.join(denied)}" if denied else
                        f"allowed all {len(NEEDED)} operations Cove uses",
                        "Cove provisions namespaces, quotas, policies and apps",
                        "bind Cove's account to cluster-admin or a role with these verbs"))
    roles = [m["metadata"]["name"] for m in cluster_roles()]
    missing = [r for r in roles if not _exists(client, ClusterRole, r)]
    checks.append(Check("platform", f"{name} member roles", WARN if missing else PASS,
                        f"not yet installed: {', '.join(missing)}" if missing else
                        f"{', '.join(roles)} installed",
                        "members' cluster access is granted through them",
                        "installed with the first space Cove provisions there"))
    policies = [m["metadata"]["name"] for m in admission_policies(ingress_class)
                if m["kind"] == "ValidatingAdmissionPolicy"]
    absent = [p for p in policies if not _exists(client, ValidatingAdmissionPolicy, p)]
    checks.append(_policies_check(name, policies, absent,
                                  unguarded=bool(absent) and _has_spaces(client)))
    if ingress_class:
        ok = _exists(client, IngressClass, ingress_class)
        checks.append(Check("platform", f"{name} ingress class", PASS if ok else WARN,
                            f"{ingress_class} {'exists' if ok else 'is not installed'}",
                            "apps are routed by the ingress controller of that class",
                            "install the ingress controller, or set ingress_class"))
    return checks


def _policies_check(name: str, policies: list[str], absent: list[str],
                    unguarded: bool) -> Check:
    """Missing policies fail once a space is on the pool: it goes without those guard
    rails. Before the first space they are only not installed yet (Cove installs them
    with it, so a fresh pool must not keep Cove from starting)."""
    why = "they hold the spaces' guard rails whoever writes into a namespace"
    if not absent:
        return Check("platform", f"{name} admission policies", PASS,
                     f"{', '.join(policies)} installed", why)
    if not unguarded:
        return Check("platform", f"{name} admission policies", WARN,
                     f"not yet installed: {', '.join(absent)}", why,
                     "installed with the first space Cove provisions there")
    return Check("platform", f"{name} admission policies", FAIL,
                 f"missing while spaces run there: {', '.join(absent)}", why,
                 "cove-server restores them on its next reconcile pass (or at start); if "
                 "they do not come back, something in the cluster deletes them")


def _has_spaces(client: Client) -> bool:
    found = client.list(Namespace, labels={SPACE_LABEL: exists()}, chunk_size=1)
    return next(iter(found), None) is not None


def _exists(client: Client, res: Any, name: str) -> bool:
    try:
        client.get(res, name)
        return True
    except ApiError as err:
        if err.status.code == 404:
            return False
        raise
