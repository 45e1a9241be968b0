"""Pure rendering of Cove's objects into Kubernetes manifests (snapshot-tested).

Applying is the adapter's job (server-side apply, field manager "cove"); nothing here
does I/O, so what Cove sends to a cluster can be read and tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cove.domain.contract import PORT, app_env
from cove.domain.procfile import MAX_PROCESS_TYPES
from cove.domain.roles import Role
from cove.domain.template import Quota, SpaceTemplate
from cove.ports.pool import AppState, ProcessState

Manifest = dict[str, Any]
MANAGED = {"app.kubernetes.io/managed-by": "cove"}
PSA = "pod-security.kubernetes.io"
APP_SA = "cove-app"
CLUSTER_ROLE = {Role.ADMIN: "cove-admin", Role.DEVELOPER: "cove-developer",
                Role.VIEWER: "cove-viewer"}


def namespace_of(space: str) -> str:
    return f"cove-{space}"


def _meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None,
          annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**MANAGED, **(labels or {})}}
    if namespace:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = annotations
    return meta


def _mem(mb: int) -> str:
    return f"{mb}Mi"


def _cpu(millis: int) -> str:
    return f"{millis}m"


# -- cluster-wide ---------------------------------------------------------------------------

_READ = ["get", "list", "watch"]
_WRITE = ["create", "update", "patch", "delete", "deletecollection"]
_WORKLOADS = [
    ("", ["pods", "configmaps", "persistentvolumeclaims"]),
    ("apps", ["deployments", "replicasets", "statefulsets"]),
    ("batch", ["jobs", "cronjobs"]),
    ("policy", ["poddisruptionbudgets"]),
    ("autoscaling", ["horizontalpodautoscalers"]),
]
# What a tenant may look at but never change: the space's guard rails, and what routes
# traffic (Cove writes Ingresses, HTTPRoutes and Services from the space's own claims; a
# tenant writing them could claim another's hostname or point a Service's endpoints at
# another tenant's pod, CVE-2021-25740).
_GUARD_RAILS = [
    ("", ["resourcequotas", "limitranges", "serviceaccounts", "events", "services",
          "endpoints"]),
    ("discovery.k8s.io", ["endpointslices"]),
    ("networking.k8s.io", ["networkpolicies", "ingresses"]),
    ("gateway.networking.k8s.io", ["httproutes"]),
    ("events.k8s.io", ["events"]),
]


def cluster_roles() -> list[Manifest]:
    """The roles space members are bound to. None grants escalate, bind or impersonate,
    and none may write quotas, limit ranges, network policies, role bindings or namespaces."""
    viewer = [{"apiGroups": [g], "resources": r, "verbs": _READ}
              for g, r in _WORKLOADS + _GUARD_RAILS]
    viewer.append({"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list"]})
    developer = viewer + [{"apiGroups": [g], "resources": r, "verbs": _WRITE}
                          for g, r in _WORKLOADS]
    developer += [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": _READ + _WRITE},
        {"apiGroups": [""], "resources": ["pods/exec", "pods/portforward", "pods/attach"],
         "verbs": ["create", "get"]},
    ]
    admin = [*developer, {"apiGroups": ["rbac.authorization.k8s.io"],
                          "resources": ["roles", "rolebindings"], "verbs": _READ}]
    return [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": _meta(CLUSTER_ROLE[role]), "rules": rules}
            for role, rules in ((Role.ADMIN, admin), (Role.DEVELOPER, developer),
                                (Role.VIEWER, viewer))]


# Tolerations the API server adds to every pod itself (DefaultTolerationSeconds).
ALLOWED_TOLERATIONS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
SPACE_LABEL = "cove.dev/space"
CONFIGMAPS = 50  # per space (the cluster puts one there itself: kube-root-ca.crt)
REVISIONS = 5  # old ReplicaSets each of Cove's Deployments keeps (revisionHistoryLimit)
KEPT_CONFIGS = 3  # releases whose config Secret stays, for a quick rollback
OWN = 10  # of each workload kind, what members may make themselves beside Cove's


def object_counts(quota: Quota, pods: int) -> dict[str, str]:
    """Count limits, so no space can fill the cluster's etcd for everyone: room for all
    that Cove makes for the template's apps, and for a few of the members' own."""
    deployments = quota.apps * MAX_PROCESS_TYPES + OWN  # one per process type
    return {
        "configmaps": str(CONFIGMAPS),
        # an app's config is a Secret per release: the kept ones, and the next while it rolls out
        "secrets": str((KEPT_CONFIGS + 1) * quota.apps + 2 * OWN),
        "count/deployments.apps": str(deployments),
        # the kept history, the current one, and one still scaling down during a rollout
        "count/replicasets.apps": str(deployments * (REVISIONS + 2)),
        "count/horizontalpodautoscalers.autoscaling": str(deployments),
        "count/poddisruptionbudgets.policy": str(quota.apps + OWN),  # web above one instance
        # `pods` counts only running ones: finished pods (a Job's, an evicted one) stay in
        # etcd until deleted
        "count/pods": str(2 * pods + 2 * OWN),
        "count/jobs.batch": str(2 * OWN), "count/cronjobs.batch": str(OWN),
        "count/statefulsets.apps": str(OWN)}


def _writes(resource: str) -> list[dict[str, Any]]:
    """An admission policy's match: creating or updating a core `resource`."""
    return [{"apiGroups": [""], "apiVersions": ["v1"], "resources": [resource],
             "operations": ["CREATE", "UPDATE"]}]


_TOLERABLE = "[" + ", ".join(f"'{key}'" for key in ALLOWED_TOLERATIONS) + "]"
# Guard rails in the API server itself (ValidatingAdmissionPolicy, no webhook to run): they
# hold for whoever writes into a space's namespace, Cove included.
_POLICIES: dict[str, tuple[list[dict[str, Any]], list[tuple[str, str]]]] = {
    "cove-pods": (_writes("pods"), [
        ("request.operation != 'CREATE' || !has(object.spec.nodeName) "
         "|| object.spec.nodeName == ''",
         "pods in Cove spaces are placed by the scheduler: nodeName is not allowed"),
        ("!has(object.spec.priorityClassName) "
         "|| !object.spec.priorityClassName.startsWith('system-')",
         "system priority classes are for the platform, not for pods in Cove spaces"),
        ("!has(object.spec.tolerations) || object.spec.tolerations.all(t, has(t.key) "
         f"&& t.key in {_TOLERABLE})",
         "pods in Cove spaces may not tolerate taints: nodes tainted for the platform or "
         "for others are not theirs"),
        (f"object.spec.serviceAccountName == '{APP_SA}' "
         "|| (has(object.spec.automountServiceAccountToken) "
         "&& object.spec.automountServiceAccountToken == false)",
         f"pods in Cove spaces run as {APP_SA} or set automountServiceAccountToken: false "
         "(no API token in a tenant's pod)"),
        ("!has(object.spec.volumes) || object.spec.volumes.all(v, !has(v.projected) "
         "|| !has(v.projected.sources) "
         "|| v.projected.sources.all(s, !has(s.serviceAccountToken)))",
         "pods in Cove spaces may not mount service account tokens"),
        ("!has(object.spec.hostAliases) || size(object.spec.hostAliases) == 0",
         "hostAliases are not available in Cove spaces"),
    ]),
    "cove-services": (_writes("services"), [
        ("!has(object.spec.externalIPs) || size(object.spec.externalIPs) == 0",
         "Services in Cove spaces may not set externalIPs (CVE-2020-8554)"),
        ("!has(object.spec.type) || object.spec.type == 'ClusterIP'",
         "Services in Cove spaces are ClusterIP: no ExternalName, NodePort or LoadBalancer"),
        ("has(object.spec.selector) && size(object.spec.selector) > 0",
         "Services in Cove spaces select their pods: a Service without a selector takes "
         "Endpoints written by hand (CVE-2021-25740)"),
    ]),
    "cove-secrets": (_writes("secrets"), [
        ("object.type != 'kubernetes.io/service-account-token'",
         "legacy service account token Secrets never expire: not available in Cove spaces"),
    ]),
}


# An app's claimed hostnames, written by Cove on its space's namespace (tenants cannot
# write namespaces): the routing policies admit no other host for the app's route.
HOSTS_ANNOTATION = "hosts.cove.dev/"
_CLAIMS = ("has(namespaceObject.metadata.annotations) && "
           f"('{HOSTS_ANNOTATION}' + object.metadata.name) in "
           "namespaceObject.metadata.annotations ? namespaceObject.metadata.annotations"
           f"['{HOSTS_ANNOTATION}' + object.metadata.name].split(',') : []")
_ONLY_COVES_ANNOTATIONS = (
    "!has(object.metadata.annotations) || object.metadata.annotations.all(k, "
    "k.startsWith('cove.dev/'))",
    "routes in Cove spaces carry only Cove's annotations (annotations configure the "
    "router: snippets, auth URLs, mirrors)")


def _routing_policies(ingress_class: str | None) -> dict[str, tuple[
        list[dict[str, Any]], list[tuple[str, str]]]]:
    ingress = [
        ("!has(object.spec.defaultBackend)",
         "Ingresses in Cove spaces have no default backend: they route only the hostnames "
         "their app claims in Cove"),
        ("has(object.spec.rules) && size(object.spec.rules) > 0 && object.spec.rules.all(r, "
         "has(r.host) && r.host in variables.claims)",
         "every rule of an Ingress in a Cove space names a hostname its app claims in Cove "
         "(cove domains add)"),
        ("!has(object.spec.tls) || object.spec.tls.all(t, !has(t.hosts) "
         "|| t.hosts.all(h, h in variables.claims))",
         "TLS hosts of an Ingress in a Cove space are hostnames its app claims in Cove"),
        _ONLY_COVES_ANNOTATIONS,
    ]
    if ingress_class:
        ingress.append((f"has(object.spec.ingressClassName) && "
                        f"object.spec.ingressClassName == '{ingress_class}'",
                        f"Ingresses in Cove spaces use the pool's class {ingress_class!r}"))
    route = [("has(object.spec.hostnames) && size(object.spec.hostnames) > 0 && "
              "object.spec.hostnames.all(h, h in variables.claims)",
              "an HTTPRoute in a Cove space names only hostnames its app claims in Cove"),
             _ONLY_COVES_ANNOTATIONS]
    return {
        "cove-ingresses": ([{"apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"],
                             "resources": ["ingresses"], "operations": ["CREATE", "UPDATE"]}],
                           ingress),
        "cove-httproutes": ([{"apiGroups": ["gateway.networking.k8s.io"], "apiVersions": ["*"],
                              "resources": ["httproutes"],
                              "operations": ["CREATE", "UPDATE"]}], route),
    }


def admission_policies(ingress_class: str | None = "nginx") -> list[Manifest]:
    """The policies and their bindings to every namespace that is a Cove space."""
    out: list[Manifest] = []
    routing = _routing_policies(ingress_class)
    for name, (rules, checks) in sorted({**_POLICIES, **routing}.items()):
        spec: dict[str, Any] = {
            "failurePolicy": "Fail", "matchConstraints": {"resourceRules": rules},
            "validations": [{"expression": e, "message": m} for e, m in checks]}
        if name in routing:
            spec["variables"] = [{"name": "claims", "expression": _CLAIMS}]
        out.append({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy", "metadata": _meta(name), "spec": spec})
        out.append({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding", "metadata": _meta(name),
            "spec": {"policyName": name, "validationActions": ["Deny"],
                     "matchResources": {"namespaceSelector": {"matchExpressions": [
                         {"key": SPACE_LABEL, "operator": "Exists"}]}}}})
    return out


# -- a space ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SpaceSpec:
    name: str
    template: SpaceTemplate
    members: tuple[tuple[str, Role], ...] = ()
    router_namespace: str = "ingress-nginx"
    dns_namespace: str = "kube-system"
    # Members are the cluster's users `<prefix><name>`, so a Cove account never matches
    # another identity of the cluster (an operator's identity provider maps to the same).
    user_prefix: str = "cove:"


def space_manifests(spec: SpaceSpec) -> list[Manifest]:
    ns = namespace_of(spec.name)
    quota, tpl = spec.template.quota, spec.template
    default, biggest = tpl.sizes[tpl.default_size], tpl.sizes[tpl.max_size]
    # Cove checks the quota for the steady state before it applies anything; the
    # cluster's quota adds room for the one extra instance a rolling update surges with,
    # or a space at its quota could never roll out a new release.
    pods = quota.instances + max(1, -(-quota.instances // 4))
    memory = quota.memory_mb + max(biggest.memory_mb, quota.memory_mb // 4)
    cpu = quota.cpu_millis + max(biggest.cpu_millis, quota.cpu_millis // 4)
    labels = {SPACE_LABEL: spec.name}
    out: list[Manifest] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns, labels={
            **labels,
            f"{PSA}/enforce": "restricted", f"{PSA}/enforce-version": "latest",
            f"{PSA}/audit": "restricted", f"{PSA}/warn": "restricted"})},
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta("cove-quota", ns),
         "spec": {"hard": {
             "pods": str(pods),
             "requests.cpu": _cpu(cpu), "limits.cpu": _cpu(cpu),
             "requests.memory": _mem(memory), "limits.memory": _mem(memory),
             "services": str(quota.apps), "services.nodeports": "0",
             "services.loadbalancers": "0", "persistentvolumeclaims": "0",
             "requests.storage": "0", **object_counts(quota, pods)}}},
        {"apiVersion": "v1", "kind": "LimitRange", "metadata": _meta("cove-limits", ns),
         "spec": {"limits": [{
             "type": "Container",
             "default": {"cpu": _cpu(default.cpu_millis), "memory": _mem(default.memory_mb)},
             "defaultRequest": {"cpu": _cpu(default.cpu_millis),
                                "memory": _mem(default.memory_mb)},
             "max": {"cpu": _cpu(biggest.cpu_millis), "memory": _mem(biggest.memory_mb)}}]}},
        _netpol(ns, "default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(APP_SA, ns),
         "automountServiceAccountToken": False},
    ]
    if tpl.network.allow_same_space:
        out.append(_netpol(ns, "allow-same-space", {
            "podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {}}]}],
            "egress": [{"to": [{"podSelector": {}}]}]}))
    if tpl.network.allow_from_router:
        out.append(_netpol(ns, "allow-from-router", {
            "podSelector": {}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": spec.router_namespace}}}],
                "ports": [{"protocol": "TCP", "port": PORT}]}]}))
    if tpl.network.allow_dns:
        out.append(_netpol(ns, "allow-dns", {
            "podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": spec.dns_namespace}}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}))
    for user, role in sorted(spec.members):
        out.append(member_binding(ns, user, role, spec.user_prefix))
    return out


MEMBER_LABEL = "cove.dev/member"


def member_binding(ns: str, user: str, role: Role, prefix: str) -> Manifest:
    return {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": _meta(f"cove-member-{user}", ns, labels={MEMBER_LABEL: user}),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": CLUSTER_ROLE[role]},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": f"{prefix}{user}"}]}


def claims_patch(app: str, hosts: list[str] | None) -> dict[str, Any]:
    """The namespace annotation naming an app's hostnames (None: the app is gone)."""
    return {"metadata": {"annotations": {HOSTS_ANNOTATION + app: ",".join(hosts)
                                         if hosts else None}}}


def _netpol(ns: str, name: str, spec: dict[str, Any]) -> Manifest:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta(name, ns), "spec": spec}


# -- an app -----------------------------------------------------------------------------------

# An app is rendered from the pool port's AppState; these names read better here.
AppSpec = AppState
ProcessSpec = ProcessState


DRAIN_SECONDS = 5  # a web pod's wait before it is told to stop (preStop)


def secret_name(app: str, release: int) -> str:
    return f"{app}-v{release}-env"


def app_labels(spec: AppSpec, process: str | None = None) -> dict[str, str]:
    labels = {"app.kubernetes.io/name": spec.app, "app.kubernetes.io/instance": spec.app,
              "app.kubernetes.io/part-of": spec.app, "cove.dev/app": spec.app}
    if process:
        labels |= {"app.kubernetes.io/component": process, "cove.dev/process": process}
    return labels


@dataclass(frozen=True)
class Gateway:
    """Route through a Gateway API Gateway (an HTTPRoute) instead of an Ingress."""

    name: str
    namespace: str


def app_manifests(spec: AppSpec, ingress_class: str | None = "nginx",
                  gateway: Gateway | None = None) -> list[Manifest]:
    ns = namespace_of(spec.space)
    version = f"v{spec.release}"
    out: list[Manifest] = [{
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque", "immutable": True,
        "metadata": _meta(secret_name(spec.app, spec.release), ns,
                          labels={**app_labels(spec), "app.kubernetes.io/version": version}),
        "stringData": dict(sorted(spec.config.items()))}]
    for proc in spec.processes:
        out.append(_deployment(spec, proc, ns))
        if proc.autoscale is not None:
            out.append(_autoscaler(spec, proc, ns))
    web = next((p for p in spec.processes if p.name == "web"), None)
    if web is not None:
        out.append({"apiVersion": "v1", "kind": "Service",
                    "metadata": _meta(spec.app, ns, labels=app_labels(spec, "web")),
                    "spec": {"type": "ClusterIP",
                             "selector": {"cove.dev/app": spec.app, "cove.dev/process": "web"},
                             "ports": [{"name": "http", "port": 80, "targetPort": PORT,
                                        "protocol": "TCP"}]}})
        out.append(_http_route(spec, ns, gateway) if gateway else _ingress(spec, ns,
                                                                             ingress_class))
        if web.count > 1:
            out.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                        "metadata": _meta(spec.app, ns, labels=app_labels(spec, "web")),
                        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {
                            "cove.dev/app": spec.app, "cove.dev/process": "web"}}}})
    return out


def _ingress(spec: AppSpec, ns: str, ingress_class: str | None) -> Manifest:
    ingress: dict[str, Any] = {"rules": [
        {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": spec.app, "port": {"number": 80}}}}]}}
        for host in spec.hostnames]}
    if ingress_class:
        ingress["ingressClassName"] = ingress_class
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": _meta(spec.app, ns, labels=app_labels(spec, "web")), "spec": ingress}


def _http_route(spec: AppSpec, ns: str, gateway: Gateway) -> Manifest:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": _meta(spec.app, ns, labels=app_labels(spec, "web")),
            "spec": {"parentRefs": [{"name": gateway.name, "namespace": gateway.namespace}],
                     "hostnames": list(spec.hostnames),
                     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                "backendRefs": [{"name": spec.app, "port": 80}]}]}}


def _autoscaler(spec: AppSpec, proc: ProcessSpec, ns: str) -> Manifest:
    assert proc.autoscale is not None
    name = f"{spec.app}-{proc.name}"
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(name, ns, labels=app_labels(spec, proc.name)),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": name},
                     "minReplicas": proc.autoscale.min, "maxReplicas": proc.autoscale.max,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization",
                         "averageUtilization": proc.autoscale.cpu_percent}}}]}}


def _deployment(spec: AppSpec, proc: ProcessSpec, ns: str) -> Manifest:
    version = f"v{spec.release}"
    labels = app_labels(spec, proc.name)
    env = [{"name": k, "value": v}
           for k, v in app_env(spec.app, spec.space, spec.release, proc.name).items()]
    resources = {"cpu": _cpu(proc.size.cpu_millis), "memory": _mem(proc.size.memory_mb)}
    container: dict[str, Any] = {
        "name": proc.name, "image": spec.image, "imagePullPolicy": "IfNotPresent",
        "env": env,
        "envFrom": [{"secretRef": {"name": secret_name(spec.app, spec.release)}}],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                            "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if proc.command:
        container["command"] = proc.command
    if proc.name == "web":
        def probe(**extra: int) -> dict[str, Any]:
            return {"httpGet": {"path": spec.health_path, "port": PORT}, "periodSeconds": 5,
                    "timeoutSeconds": 2, **extra}

        container["ports"] = [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]
        # A terminating pod keeps serving while the routers and Services stop sending it
        # traffic (they learn of it from the EndpointSlices, a moment later).
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}}
        container["readinessProbe"] = probe(failureThreshold=3)
        container["livenessProbe"] = probe(failureThreshold=6,
                                           initialDelaySeconds=spec.health_timeout)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(f"{spec.app}-{proc.name}", ns,
                          labels={**labels, "app.kubernetes.io/version": version},
                          annotations={"cove.dev/release": version}),
        "spec": {
            # Under an autoscaler the replica count is its to set, not Cove's.
            **({} if proc.autoscale else {"replicas": proc.count}),
            "revisionHistoryLimit": REVISIONS,
            "progressDeadlineSeconds": max(spec.health_timeout * 2, 60),
            "selector": {"matchLabels": {"cove.dev/app": spec.app,
                                         "cove.dev/process": proc.name}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": {**labels, **MANAGED,
                                        "app.kubernetes.io/version": version},
                             "annotations": {"cove.dev/release": version}},
                "spec": {
                    "serviceAccountName": APP_SA,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": spec.grace_seconds + (
                        DRAIN_SECONDS if proc.name == "web" else 0),
                    "securityContext": {"runAsNonRoot": True, "runAsUser": spec.run_as_uid,
                                        "runAsGroup": spec.run_as_uid,
                                        "fsGroup": spec.run_as_uid,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {
                        "sizeLimit": _mem(spec.tmp_size_mb)}}],
                },
            },
        },
    }
