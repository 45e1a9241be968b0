"""Applies rendered manifests to a cluster with server-side apply (lightkube).

The only module that talks to Kubernetes. lightkube was chosen for its typed,
synchronous client, first-class server-side apply and small dependency set; its
errors are mapped to Cove's domain errors here and nowhere else.

Every applied object carries a hash of what Cove rendered for it, so a reconcile of
an unchanged space reads but writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
from lightkube import ApiError, Client
from lightkube.codecs import from_dict, resource_registry
from lightkube.generic_resource import create_namespaced_resource
from lightkube.operators import exists
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Pod
from lightkube.resources.rbac_authorization_v1 import RoleBinding

from cove.adapters.runtime.kubernetes import inspect
from cove.adapters.runtime.kubernetes.render import (
    MEMBER_LABEL,
    AppSpec,
    Gateway,
    Manifest,
    SpaceSpec,
    admission_policies,
    app_manifests,
    cluster_roles,
    namespace_of,
    space_manifests,
)
from cove.adapters.runtime.logs import parse_time
from cove.domain.checks import Check
from cove.domain.contract import PORT
from cove.domain.errors import (
    Conflict,
    CoveError,
    DeployFailed,
    Forbidden,
    Invalid,
    NotFound,
    QuotaExceeded,
)
from cove.ports.pool import AppState, SpaceState
from cove.ports.registry import Destination
from cove.ports.runtime import Instance, LogLine, Posture, Stop

FIELD_MANAGER = "cove"
HTTPRoute = create_namespaced_resource("gateway.networking.k8s.io", "v1", "HTTPRoute",
                                       "httproutes")
HASH = "cove.dev/applied-hash"
# What an app consists of, for clean-up and garbage collection (kind -> lightkube class).
APP_KINDS = ("Deployment", "Service", "Ingress", "PodDisruptionBudget", "Secret",
             "HorizontalPodAutoscaler")


class ClusterUnavailable(CoveError):
    code = "cluster_unavailable"


def digest(manifest: Manifest) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:20]


@contextmanager
def domain_errors(what: str) -> Iterator[None]:
    """Translate lightkube and transport errors into Cove's domain errors."""
    try:
        yield
    except ApiError as err:
        code, message = err.status.code, err.status.message or str(err)
        if code == 403 and "exceeded quota" in message:
            raise QuotaExceeded(f"{what}: the space's quota is exhausted ({message})") from err
        if code == 403:
            raise Forbidden(f"{what}: the cluster refused it ({message})") from err
        if code == 404:
            raise NotFound(f"{what}: not found in the cluster") from err
        if code == 409:
            raise Conflict(f"{what}: conflict in the cluster ({message})") from err
        if code in (400, 422):
            raise Invalid(f"{what}: the cluster rejected it ({message})") from err
        raise ClusterUnavailable(f"{what}: the cluster answered {code}: {message}") from err
    except httpx.TransportError as err:
        raise ClusterUnavailable(f"{what}: the cluster is unreachable ({err}); running apps "
                                 "are unaffected, try again later") from err


@dataclass
class Counters:
    requests: int = 0
    writes: int = 0


class KubernetesCluster:
    """A Cove pool backed by a Kubernetes cluster (implements the Pool port)."""

    def __init__(self, client: Client, *, name: str = "kubernetes",
                 router_namespace: str = "ingress-nginx",
                 ingress_class: str | None = "nginx", base_domain: str | None = None,
                 gateway: Gateway | None = None, registry: Destination | None = None,
                 reconcile_interval: float = 30.0) -> None:
        self.client = client
        self.registry = registry
        self.gateway = gateway
        self.base_domain = base_domain
        self.name = name
        self.router_namespace = router_namespace
        self.ingress_class = ingress_class
        self.counters = Counters()
        self.takes_builds = registry is not None  # its nodes pull what Cove pushes there
        self.reconcile_interval = reconcile_interval  # drift checks cost API requests
        self.autoscale_metric = "cpu"  # the Autoscaling capability: HorizontalPodAutoscalers
        self._roles_installed = False

    # -- applying ---------------------------------------------------------------------------

    def _current_hashes(self, manifests: list[Manifest]
                        ) -> dict[tuple[str, str, str], tuple[str, int | None]]:
        """One list call per kind and namespace: what Cove applied last time."""
        seen: dict[tuple[str, str, str], tuple[str, int | None]] = {}
        groups = {(m["kind"], m["apiVersion"], m["metadata"].get("namespace")) for m in manifests}
        for kind, api_version, ns in groups:
            res: Any = resource_registry.load(api_version, kind)
            self.counters.requests += 1
            selector: dict[str, Any] = {"app.kubernetes.io/managed-by": "cove"}
            try:
                where = {"namespace": ns} if ns else {}
                found = _retrying(partial(_list_all, self.client, res, selector, where))
                obj: Any
                for obj in found:
                    annotations = obj.metadata.annotations or {}
                    replicas = obj.spec.replicas if kind == "Deployment" else None
                    seen[(kind, ns or "", obj.metadata.name)] = (annotations.get(HASH, ""),
                                                                 replicas)
            except ApiError as err:
                if err.status.code != 404:  # a namespace not created yet lists as empty
                    raise
        return seen

    def apply(self, manifests: list[Manifest] | AppState, what: str = "") -> int:
        """Server-side apply what changed; return the number of writes."""
        if isinstance(manifests, AppState):
            what = what or f"applying {manifests.app!r} v{manifests.release}"
            manifests = self._render(manifests)
        writes = 0
        with domain_errors(what):
            current = self._current_hashes(manifests)
            for manifest in manifests:
                want = digest(manifest)
                meta = manifest["metadata"]
                key = (manifest["kind"], meta.get("namespace") or "", meta["name"])
                if _unchanged(current.get(key), want, manifest):
                    continue  # unchanged since Cove applied it
                stamped = {**manifest, "metadata": {
                    **meta, "annotations": {**meta.get("annotations", {}), HASH: want}}}
                self.counters.requests += 1
                _retrying(partial(self.client.apply, from_dict(stamped),
                                  field_manager=FIELD_MANAGER, force=True))
                writes += 1
        self.counters.writes += writes
        return writes

    def _render(self, spec: AppSpec) -> list[Manifest]:
        return app_manifests(spec, self.ingress_class, self.gateway)

    def _app_kinds(self) -> tuple[str, ...]:
        # HTTPRoutes exist only where the Gateway API is installed; ask for them only then.
        return (*APP_KINDS, "HTTPRoute") if self.gateway else APP_KINDS

    # -- spaces -----------------------------------------------------------------------------

    def ensure_cluster_roles(self) -> int:
        """Cove's cluster-wide objects: the members' roles and the admission policies
        bound to every space's namespace."""
        return self.apply([*cluster_roles(), *admission_policies()],
                          "installing Cove's cluster roles and policies")

    def _ensure_cluster_objects(self) -> None:
        """Once per process: an upgraded Cove brings its roles and policies to the cluster
        at its first provisioning or reconcile pass, whichever comes first."""
        if not self._roles_installed:
            self.ensure_cluster_roles()
            self._roles_installed = True

    def provision_space(self, space: SpaceSpec | SpaceState) -> int:
        self._ensure_cluster_objects()
        spec = space if isinstance(space, SpaceSpec) else SpaceSpec(
            space.name, space.template, space.members, router_namespace=self.router_namespace)
        manifests = space_manifests(spec)
        removed = self._drop_stale_bindings(spec.name, manifests)
        return removed + self.apply(manifests, f"provisioning space {spec.name!r}")

    def _drop_stale_bindings(self, space: str, manifests: list[Manifest]) -> int:
        """Members' RoleBindings are exactly the members: a removed member's binding goes,
        and a changed role replaces it (a binding's roleRef cannot change in place)."""
        ns = namespace_of(space)
        wanted = {m["metadata"]["name"]: m["roleRef"]["name"] for m in manifests
                  if m["kind"] == "RoleBinding"}
        deleted = 0
        with domain_errors(f"updating the members of space {space!r}"):
            self.counters.requests += 1
            for found in self.client.list(RoleBinding, namespace=ns,
                                          labels={MEMBER_LABEL: exists()}):
                name = found.metadata.name if found.metadata else None
                if name and wanted.get(name) != found.roleRef.name:
                    self.counters.requests += 1
                    try:
                        self.client.delete(RoleBinding, name, namespace=ns)
                    except ApiError as err:
                        if err.status.code != 404:
                            raise
                    deleted += 1
        self.counters.writes += deleted
        return deleted

    def remove_space(self, space: str, wait: float = 0) -> None:
        with domain_errors(f"removing space {space!r}"):
            try:
                self.counters.requests += 1
                self.client.delete(Namespace, namespace_of(space))
            except ApiError as err:
                if err.status.code != 404:
                    raise
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    self.client.get(Namespace, namespace_of(space))
                except ApiError as err:
                    if err.status.code == 404:
                        return
                    raise
                time.sleep(0.5)

    # -- apps -------------------------------------------------------------------------------

    def deploy(self, spec: AppSpec, previous: AppSpec | None, timeout: float) -> None:
        """Apply an app's release and wait for its rollout; on failure restore `previous`."""
        what = f"deploying {spec.app!r} v{spec.release}"
        self.apply(self._render(spec), what)
        try:
            self.wait_rollout(spec, timeout)
        except DeployFailed:
            if previous is not None:
                self.apply(self._render(previous),
                           f"restoring {spec.app!r} v{previous.release}")
            else:
                self.remove_app(spec.space, spec.app)
            raise
        self.prune(spec)

    def reconcile(self, apps: list[AppState]) -> int:
        """Re-apply many apps, one namespace at a time: each kind is listed once per space."""
        self._ensure_cluster_objects()
        by_space: dict[str, list[Manifest]] = {}
        for app in apps:
            by_space.setdefault(app.space, []).extend(self._render(app))
        return sum(self.apply(manifests, f"reconciling space {space!r}")
                   for space, manifests in sorted(by_space.items()))

    def wait_rollout(self, spec: AppSpec, timeout: float) -> None:
        ns = namespace_of(spec.space)
        deadline = time.monotonic() + timeout
        pending = {f"{spec.app}-{p.name}" for p in spec.processes}
        reason = "no progress"
        with domain_errors(f"waiting for {spec.app!r}"):
            while pending:
                for name in sorted(pending):
                    self.counters.requests += 1
                    dep = self.client.get(Deployment, name, namespace=ns)
                    ok, reason = _rolled_out(dep)
                    if ok:
                        pending.discard(name)
                    elif reason.startswith("failed"):
                        raise DeployFailed(f"{spec.app} v{spec.release} {reason}; the previous "
                                           "release keeps serving")
                if pending and time.monotonic() > deadline:
                    raise DeployFailed(f"{spec.app} v{spec.release} did not become ready within "
                                       f"{timeout:.0f}s ({reason}); the previous release keeps "
                                       "serving")
                if pending:
                    time.sleep(0.5)

    def prune(self, spec: AppSpec) -> None:
        """Delete what an app no longer has: old release secrets, removed process types."""
        ns = namespace_of(spec.space)
        keep = {(m["kind"], m["metadata"]["name"]) for m in self._render(spec)}
        with domain_errors(f"cleaning up {spec.app!r}"):
            for kind in self._app_kinds():
                res = _kind(kind)
                self.counters.requests += 1
                for obj in self.client.list(res, namespace=ns, labels={"cove.dev/app": spec.app}):
                    name = obj.metadata.name
                    release = (obj.metadata.labels or {}).get("app.kubernetes.io/version", "")
                    if (kind, name) in keep:
                        continue
                    if kind == "Secret" and _version(release) >= spec.release - 2:
                        continue  # recent releases' config stays for a quick rollback
                    self.counters.requests += 1
                    self.client.delete(res, name, namespace=ns)

    def remove_app(self, space: str, app: str) -> None:
        ns = namespace_of(space)
        with domain_errors(f"removing {app!r}"):
            for kind in self._app_kinds():
                res = _kind(kind)
                self.counters.requests += 1
                for obj in self.client.list(res, namespace=ns, labels={"cove.dev/app": app}):
                    self.counters.requests += 1
                    self.client.delete(res, obj.metadata.name, namespace=ns)

    def pods(self, space: str, app: str | None) -> list[Pod]:
        """An app's pods, or (None) those of every app of the space in one request."""
        labels: dict[str, Any] = {"cove.dev/app": app if app else exists()}
        with domain_errors(f"listing {app or space!r}"):
            self.counters.requests += 1
            return list(self.client.list(Pod, namespace=namespace_of(space), labels=labels))

    def logs(self, space: str, app: str, tail: int, follow: bool,
             stop: Stop | None = None, app_id: int = 0) -> Iterator[LogLine]:
        """Pod logs through the API server, merged across instances in time order."""
        ns = namespace_of(space)
        instances = self.instances(space, app)
        history: list[LogLine] = []
        with domain_errors(f"reading the logs of {app!r}"):
            for inst in instances:
                self.counters.requests += 1
                for raw in self.client.log(inst.name, namespace=ns, container=inst.process,
                                           tail_lines=tail, timestamps=True):
                    line = _log_line(raw, f"{inst.process}.{inst.index}")
                    if line:
                        history.append(line)
        history.sort(key=lambda line: line.time)
        yield from history[-tail:] if tail > 0 else []
        if not follow:
            return
        lines: queue.Queue[LogLine] = queue.Queue()

        def pump(inst: Instance) -> None:
            try:
                for raw in self.client.log(inst.name, namespace=ns, container=inst.process,
                                           follow=True, tail_lines=0, timestamps=True):
                    line = _log_line(raw, f"{inst.process}.{inst.index}")
                    if line:
                        lines.put(line)
            except (ApiError, httpx.HTTPError):
                return  # the pod went away; the others keep streaming

        for inst in instances:
            threading.Thread(target=pump, args=(inst,), daemon=True).start()
        while stop is None or not stop():
            try:
                yield lines.get(timeout=0.2)
            except queue.Empty:
                continue

    # -- what doctor reads back -------------------------------------------------------------

    def posture(self, space: str, app: str) -> list[Posture]:
        with domain_errors(f"reading {app!r}"):
            self.counters.requests += 1
            return inspect.posture(self.client, space, app)

    def space_checks(self, space: str) -> list[Check]:
        with domain_errors(f"reading space {space!r}"):
            self.counters.requests += 4
            return inspect.space_checks(self.client, space)

    def preflight(self) -> list[Check]:
        return inspect.preflight(self.client, self.name, self.ingress_class)

    def instances(self, space: str, app: str | None = None) -> list[Instance]:
        """Pods as Cove instances: web.1, web.2, ... in a stable order, of one app or
        (None) of every app of the space."""
        result: list[Instance] = []
        groups: dict[tuple[str, str], list[Pod]] = {}
        for pod in self.pods(space, app):
            if pod.metadata and pod.metadata.deletionTimestamp:
                continue  # on its way out: no longer an instance of the app
            labels = (pod.metadata.labels if pod.metadata else None) or {}
            key = (labels.get("cove.dev/app", ""), labels.get("cove.dev/process", ""))
            groups.setdefault(key, []).append(pod)
        for (owner, process), pods in sorted(groups.items()):
            pods.sort(key=lambda p: (p.metadata.creationTimestamp, p.metadata.name))  # type: ignore[union-attr]
            for index, pod in enumerate(pods, start=1):
                result.append(_instance(pod, space, owner, process, index))
        return result


def _retrying(call: Callable[[], Any], attempts: int = 20) -> Any:
    """Retry what the API server turns away for now (429: busy, or storage warming up)."""
    for attempt in range(attempts):
        try:
            return call()
        except ApiError as err:
            if err.status.code != 429 or attempt == attempts - 1:
                raise
            time.sleep(min(0.1 * 2 ** attempt, 2.0))
    raise AssertionError("unreachable")


def _list_all(client: Client, res: Any, labels: dict[str, Any], where: dict[str, str]
              ) -> list[Any]:
    # Read every page inside the retry: lightkube fetches them lazily.
    if where:
        return list(client.list(res, labels=labels, namespace=where["namespace"]))
    return list(client.list(res, labels=labels))


def _log_line(raw: str, source: str) -> LogLine | None:
    stamp, _, text = raw.rstrip("\n").partition(" ")
    when = parse_time(stamp)
    return LogLine(when, source, text) if when else None


def _unchanged(live: tuple[str, int | None] | None, want: str, manifest: Manifest) -> bool:
    """Cove's hash matches, and nobody changed the replica count Cove set.

    Other hand edits are undone on the next change Cove applies, not by every reconcile
    (that would need a full server-side apply of every object every time).
    """
    if live is None or live[0] != want:
        return False
    replicas = manifest.get("spec", {}).get("replicas") if manifest["kind"] == "Deployment" \
        else None
    return replicas is None or live[1] == replicas


def _instance(pod: Pod, space: str, app: str, process: str, index: int) -> Instance:
    status, meta = pod.status, pod.metadata
    assert meta is not None
    ready = any(c.type == "Ready" and c.status == "True"
                for c in (status.conditions if status else None) or [])
    phase = (status.phase if status else None) or "Pending"
    state = "running" if phase == "Running" else phase.lower()
    release = _version((meta.annotations or {}).get("cove.dev/release", ""))
    ip = status.podIP if status else None
    return Instance(name=meta.name or "", app_id=0, space=space, app=app, process=process,
                    index=index, release=release, state=state,
                    address=f"{ip}:{PORT}" if ip and ready else None,
                    started_at=status.startTime if status else None,
                    labels={"ready": str(ready).lower()})


def _kind(kind: str) -> Any:
    from lightkube.resources import apps_v1, autoscaling_v2, core_v1, networking_v1, policy_v1

    if kind == "HTTPRoute":
        return HTTPRoute
    return {"HorizontalPodAutoscaler": autoscaling_v2.HorizontalPodAutoscaler,
            "Deployment": apps_v1.Deployment, "Service": core_v1.Service,
            "Ingress": networking_v1.Ingress, "Secret": core_v1.Secret,
            "PodDisruptionBudget": policy_v1.PodDisruptionBudget}[kind]


def _version(label: str) -> int:
    return int(label[1:]) if label.startswith("v") and label[1:].isdigit() else 0


def _rolled_out(dep: Deployment) -> tuple[bool, str]:
    """Mirror `kubectl rollout status`: (done, why not)."""
    status, spec = dep.status, dep.spec
    if status is None or spec is None or dep.metadata is None:
        return False, "no status yet"
    if (status.observedGeneration or 0) < (dep.metadata.generation or 0):
        return False, "waiting for the controller"
    for cond in status.conditions or []:
        if cond.type == "Progressing" and cond.reason == "ProgressDeadlineExceeded":
            return False, f"failed: {cond.message}"
    want = spec.replicas if spec.replicas is not None else 1
    updated, ready = status.updatedReplicas or 0, status.readyReplicas or 0
    available, total = status.availableReplicas or 0, status.replicas or 0
    if updated < want:
        return False, f"{updated} of {want} instances updated"
    if total > updated:
        return False, f"{total - updated} old instances still terminating"
    if available < want or ready < want:
        return False, f"{ready} of {want} instances ready"
    return True, "ready"
