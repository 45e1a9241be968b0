"""Applies rendered manifests to a cluster with server-side apply (lightkube).

The only module that talks to Kubernetes. lightkube was chosen for its typed,
synchronous client, first-class server-side apply and small dependency set; its
errors are mapped to Cove's domain errors here and nowhere else.

Cove owns the objects it renders whole: a reconcile compares each with the live object
and replaces what differs, and one of an unchanged space reads but writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
from lightkube import ALL_NS, ApiError, Client
from lightkube.codecs import from_dict, resource_registry
from lightkube.generic_resource import create_namespaced_resource
from lightkube.operators import exists
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Pod
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding, RoleBinding
from lightkube.types import PatchType

from cove.adapters.runtime.kubernetes import inspect
from cove.adapters.runtime.kubernetes.render import (
    CLUSTER_ROLE,
    KEPT_CONFIGS,
    MANAGED,
    MEMBER_LABEL,
    AppSpec,
    Gateway,
    Manifest,
    SpaceSpec,
    admission_policies,
    app_manifests,
    claims_patch,
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

log = logging.getLogger(__name__)
FIELD_MANAGER = "cove"
CLAIMS_MANAGER = "cove-hostnames"
HTTPRoute = create_namespaced_resource("gateway.networking.k8s.io", "v1", "HTTPRoute",
                                       "httproutes")
HASH = "cove.dev/applied-hash"
# What an app consists of, for clean-up and garbage collection (kind -> lightkube class).
APP_KINDS = ("Deployment", "Service", "Ingress", "PodDisruptionBudget", "Secret",
             "HorizontalPodAutoscaler")


# Pauses before a route is written again while the API server's cache of its namespace
# catches up with the hostnames just claimed (about 6 s in all).
CLAIM_SETTLES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.0, 0.0)
LAST_LINES = 5  # of a container's output, when it exits before the rollout is done
# Waiting reasons that no amount of waiting cures (the kubelet backs off and retries).
_CANNOT_START = {"CrashLoopBackOff", "ImagePullBackOff", "InvalidImageName",
                 "CreateContainerConfigError", "CreateContainerError", "ErrImageNeverPull"}


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
                 reconcile_interval: float = 30.0, user_prefix: str = "cove:") -> None:
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
        self.user_prefix = user_prefix
        self.autoscale_metric = "cpu"  # the Autoscaling capability: HorizontalPodAutoscalers
        self._roles_installed = False
        self._verified: dict[Key, tuple[str, str]] = {}  # objects seen in sync, by token

    # -- applying ---------------------------------------------------------------------------

    def _live(self, manifests: list[Manifest]) -> dict[Key, dict[str, Any]]:
        """What the cluster holds of these objects: one list call per kind (per namespace,
        or across all namespaces when the manifests span several)."""
        seen: dict[Key, dict[str, Any]] = {}
        kinds: dict[tuple[str, str], set[str]] = {}
        for m in manifests:
            kinds.setdefault((m["kind"], m["apiVersion"]), set()).add(
                m["metadata"].get("namespace") or "")
        for (kind, api_version), namespaces in sorted(kinds.items()):
            res: Any = resource_registry.load(api_version, kind)
            where = {} if "" in namespaces else {"namespace": ALL_NS} if len(namespaces) > 1 \
                else {"namespace": next(iter(namespaces))}
            self.counters.requests += 1
            try:
                found = _retrying(partial(_list_all, self.client, res, MANAGED, where))
            except ApiError as err:
                if err.status.code != 404:  # a namespace not created yet lists as empty
                    raise
                continue
            for obj in found:
                item = obj.to_dict()
                meta = item["metadata"]
                seen[(kind, meta.get("namespace") or "", meta["name"])] = item
        return seen

    def apply(self, manifests: list[Manifest] | AppState, what: str = "",
              keep_going: bool = False) -> int:
        """Make the cluster hold exactly what Cove rendered; return the number of writes.

        Each object is compared with the live one, not with a note Cove left on it: an
        object whose hash matches is checked by a server-side dry run of Cove's version
        (the server's defaults and normal forms on both sides), and any difference is
        replaced whole, so fields and containers added by others go too. An object seen
        in sync is not checked again until its generation (or, for kinds without one,
        its resource version) moves.
        """
        if isinstance(manifests, AppState):
            what = what or f"applying {manifests.app!r} v{manifests.release}"
            manifests = self._render(manifests)
        writes = 0
        with domain_errors(what):
            live = self._live(manifests)
            for manifest in manifests:
                try:
                    writes += self._converge(_stamped(manifest), live.get(_key(manifest)))
                except (ApiError, CoveError) as err:
                    if not keep_going:
                        raise
                    # One object the cluster refuses (a tenant filled its quota, say) must
                    # not stop the repair of every other space's objects.
                    log.warning("%s: %s %s not repaired: %s", what, manifest["kind"],
                                manifest["metadata"]["name"], err)
        self.counters.writes += writes
        return writes

    def _converge(self, want: Manifest, live: dict[str, Any] | None) -> int:
        kind, key = want["kind"], _key(want)
        if kind in _SHARED:
            if live is not None and _holds(want, live["metadata"], exact=False):
                return 0
            self.counters.requests += 1
            _retrying(partial(self.client.apply, from_dict(want), field_manager=FIELD_MANAGER,
                              force=True))
            return 1
        for _attempt in range(3):
            if live is None:
                self._claim_hosts(want)
                created = self._call(self.client.create, want, conflict_ok=True)
                if created is not None:
                    self._verified[key] = _token(kind, created)
                    return 1
                live = self._get(want)  # made meanwhile, or listed without Cove's labels
                continue
            same_hash = _annotation(live, HASH) == _annotation(want, HASH)
            if same_hash and self._verified.get(key) == _token(kind, live) and \
                    _holds(want, live["metadata"], exact=True):
                return 0
            desired = _carry_over(want, live)
            try:
                if same_hash:
                    dry = self._call(self.client.replace, desired, dry_run=True)
                    if dry is not None and _content(dry) == _content(live):
                        self._verified[key] = _token(kind, live)
                        return 0
                self._claim_hosts(want)
                done = self._call(self.client.replace, desired)
            except ApiError as err:
                if err.status.code == 422 and kind in _RECREATED:  # immutable: make anew
                    self._delete(want)
                    live = None
                    continue
                raise
            if done is not None:
                self._verified[key] = _token(kind, done)
                return 1
            live = self._get(want)  # changed meanwhile: compare again
        raise Conflict(f"{kind} {key[2]!r} kept changing while Cove repaired it")

    def _call(self, method: Callable[..., Any], manifest: Manifest, *, dry_run: bool = False,
              conflict_ok: bool = True) -> dict[str, Any] | None:
        """A create or replace; None when the object changed or appeared meanwhile (409)."""
        kwargs = {"dry_run": True} if dry_run else {}
        for wait in CLAIM_SETTLES:
            self.counters.requests += 1
            try:
                return dict(_retrying(partial(method, from_dict(manifest), **kwargs)).to_dict())
            except ApiError as err:
                if err.status.code == 409 and conflict_ok:
                    return None
                if manifest["kind"] not in _ROUTES or "claims" not in (err.status.message or ""):
                    raise
                error = err
            # The admission policy reads the namespace from the API server's cache: the
            # hostnames just claimed on it may take a moment to show there.
            time.sleep(wait)
        raise error

    def _get(self, manifest: Manifest) -> dict[str, Any] | None:
        meta = manifest["metadata"]
        res: Any = resource_registry.load(manifest["apiVersion"], manifest["kind"])
        self.counters.requests += 1
        try:
            return dict(self.client.get(res, meta["name"],
                                        namespace=meta.get("namespace")).to_dict())
        except ApiError as err:
            if err.status.code == 404:
                return None
            raise

    def _delete(self, manifest: Manifest) -> None:
        meta = manifest["metadata"]
        res: Any = resource_registry.load(manifest["apiVersion"], manifest["kind"])
        self.counters.requests += 1
        self._verified.pop(_key(manifest), None)
        self._delete_quietly(res, meta["name"], meta.get("namespace"))

    def _claim_hosts(self, route: Manifest) -> None:
        """Before a route is written, its namespace names the app's hostnames: the routing
        admission policy admits no other."""
        if route["kind"] not in _ROUTES:
            return
        spec = route["spec"]
        hosts = spec.get("hostnames") or [r["host"] for r in spec.get("rules", [])]
        self._patch_claims(route["metadata"]["namespace"], route["metadata"]["name"], hosts)

    def _patch_claims(self, ns: str, app: str, hosts: list[str] | None) -> None:
        self.counters.requests += 1
        self.client.patch(Namespace, ns, claims_patch(app, hosts), patch_type=PatchType.MERGE,
                          field_manager=CLAIMS_MANAGER)

    def _render(self, spec: AppSpec) -> list[Manifest]:
        return app_manifests(spec, self.ingress_class, self.gateway)

    def _app_kinds(self) -> tuple[str, ...]:
        # HTTPRoutes exist only where the Gateway API is installed; ask for them only then.
        return (*APP_KINDS, "HTTPRoute") if self.gateway else APP_KINDS

    # -- spaces -----------------------------------------------------------------------------

    def ensure_cluster_roles(self) -> int:
        """Cove's cluster-wide objects: the members' roles and the admission policies
        bound to every space's namespace."""
        what = "installing Cove's cluster roles and policies"
        return self._drop_cluster_grants(what) + self.apply(self._cluster_objects(), what)

    def _drop_cluster_grants(self, what: str) -> int:
        """Delete ClusterRoleBindings to Cove's member roles: Cove makes none, and one
        grants the role in every namespace, every space's included."""
        deleted = 0
        with domain_errors(what):
            self.counters.requests += 1
            for binding in self.client.list(ClusterRoleBinding):
                ref = binding.roleRef
                if ref.kind != "ClusterRole" or ref.name not in CLUSTER_ROLE.values():
                    continue
                assert binding.metadata is not None and binding.metadata.name
                log.warning("deleting ClusterRoleBinding %s: it granted %s in every namespace",
                            binding.metadata.name, ref.name)
                self.counters.requests += 1
                self._delete_quietly(ClusterRoleBinding, binding.metadata.name)
                deleted += 1
        self.counters.writes += deleted
        return deleted

    def _cluster_objects(self) -> list[Manifest]:
        return [*cluster_roles(), *admission_policies(
            None if self.gateway else self.ingress_class)]

    def _ensure_cluster_objects(self) -> None:
        """Once per process: an upgraded Cove brings its roles and policies to the cluster
        at its first provisioning or reconcile pass, whichever comes first."""
        if not self._roles_installed:
            self.ensure_cluster_roles()
            self._roles_installed = True

    def _space_spec(self, space: SpaceSpec | SpaceState) -> SpaceSpec:
        if isinstance(space, SpaceSpec):
            return space
        return SpaceSpec(space.name, space.template, space.members,
                         router_namespace=self.router_namespace, user_prefix=self.user_prefix)

    def provision_space(self, space: SpaceSpec | SpaceState) -> int:
        self._ensure_cluster_objects()
        spec = self._space_spec(space)
        manifests = space_manifests(spec)
        what = f"provisioning space {spec.name!r}"
        return self._drop_stale(manifests, what) + self.apply(manifests, what)

    def _drop_stale(self, manifests: list[Manifest], what: str) -> int:
        """Delete what these spaces hold but Cove no longer renders: members' RoleBindings
        are exactly the members (a changed role replaces the binding: its roleRef cannot
        change in place), a binding to Cove's member roles made behind Cove's back goes,
        and so does a policy the space's template dropped."""
        wanted = {_key(m): m for m in manifests}
        namespaces = {m["metadata"]["namespace"] for m in manifests
                      if m["metadata"].get("namespace")}
        where = ALL_NS if len(namespaces) > 1 else next(iter(namespaces), None)
        if where is None:
            return 0
        deleted = 0
        with domain_errors(what):
            found: list[Any] = []
            self.counters.requests += 2
            found += self.client.list(RoleBinding, namespace=where)
            found += self.client.list(NetworkPolicy, namespace=where, labels=dict(MANAGED))
            for obj in found:
                meta = obj.metadata
                if meta is None or meta.namespace not in namespaces:
                    continue
                kind = type(obj).__name__
                key = (kind, meta.namespace, meta.name)
                if kind == "RoleBinding":
                    ours = obj.roleRef.kind == "ClusterRole" and \
                        obj.roleRef.name in CLUSTER_ROLE.values()
                    if not ours and MEMBER_LABEL not in (meta.labels or {}):
                        continue  # the operator's own bindings are the operator's
                    if key in wanted and wanted[key]["roleRef"]["name"] == obj.roleRef.name:
                        continue
                elif key in wanted:
                    continue
                self.counters.requests += 1
                self._verified.pop(key, None)
                self._delete_quietly(type(obj), meta.name, meta.namespace)
                deleted += 1
        self.counters.writes += deleted
        return deleted

    def _delete_quietly(self, res: Any, name: str, namespace: str | None = None) -> None:
        """Delete what may be gone already (someone else deleted it meanwhile)."""
        try:
            self.client.delete(res, name, namespace=namespace)
        except ApiError as err:
            if err.status.code != 404:
                raise

    def remove_space(self, space: str, wait: float = 0) -> None:
        self._forget(namespace_of(space))
        with domain_errors(f"removing space {space!r}"):
            self.counters.requests += 1
            self._delete_quietly(Namespace, namespace_of(space))
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

    def reconcile(self, apps: list[AppState], spaces: Sequence[SpaceState] = ()) -> int:
        """Bring Cove's cluster objects, these spaces and these apps back to what Cove
        renders, in one pass: each kind is listed once (across namespaces)."""
        self._roles_installed = True
        space_objects = [m for space in spaces for m in space_manifests(self._space_spec(space))]
        app_objects = [m for app in apps for m in self._render(app)]
        what = f"reconciling the pool {self.name!r}"
        dropped = self._drop_cluster_grants(what)
        dropped += self._drop_stale(space_objects, what) if space_objects else 0
        return dropped + self.apply([*self._cluster_objects(), *space_objects, *app_objects],
                                    what, keep_going=True)

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
                ended = self._ended(spec) if pending else None
                if ended is not None:
                    raise DeployFailed(f"{spec.app} v{spec.release}: {ended}; the previous "
                                       "release keeps serving")
                if pending and time.monotonic() > deadline:
                    raise DeployFailed(f"{spec.app} v{spec.release} did not become ready within "
                                       f"{timeout:.0f}s ({reason}); the previous release keeps "
                                       "serving")
                if pending:
                    time.sleep(0.5)

    def _ended(self, spec: AppSpec) -> str | None:
        """Why the release's pods will never become ready, as soon as one shows it: a
        container that exited (its code and last lines), or an image the node cannot pull.
        None while they may still come up."""
        ns = namespace_of(spec.space)
        self.counters.requests += 1
        pods = self.client.list(Pod, namespace=ns, labels={
            "cove.dev/app": spec.app, "app.kubernetes.io/version": f"v{spec.release}"})
        for pod in pods:
            if pod.metadata is not None and pod.metadata.deletionTimestamp:
                continue  # on its way out: its exit says nothing of the new release
            for status in (pod.status.containerStatuses if pod.status else None) or []:
                waiting = status.state.waiting if status.state else None
                ended = status.state.terminated if status.state else None
                before = status.lastState.terminated if status.lastState else None
                if waiting is not None and waiting.reason == "CrashLoopBackOff" and before:
                    ended = before
                elif waiting is not None and waiting.reason in _CANNOT_START:
                    return f"{status.name} cannot start ({waiting.reason}: {waiting.message})"
                if ended is None or ended.exitCode == 0:
                    continue  # running now (whatever it went through), or not started yet
                return f"{status.name} exited with code {ended.exitCode}" + \
                    self._last_words(pod, status.name, ns)
        return None

    def _last_words(self, pod: Pod, container: str, ns: str) -> str:
        assert pod.metadata is not None and pod.metadata.name
        self.counters.requests += 1
        try:  # a container waiting to restart still shows its last run's output
            lines = list(self.client.log(pod.metadata.name, namespace=ns, container=container,
                                         tail_lines=LAST_LINES))
        except (ApiError, httpx.HTTPError):
            return ""
        said = "; ".join(line.rstrip("\n") for line in lines if line.strip())
        return f"; its last lines: {said}" if said else " without writing anything"

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
                    if kind == "Secret" and _version(release) > spec.release - KEPT_CONFIGS:
                        continue  # recent releases' config stays for a quick rollback
                    self.counters.requests += 1
                    self._verified.pop((kind, ns, name), None)
                    self.client.delete(res, name, namespace=ns)

    def remove_app(self, space: str, app: str) -> None:
        ns = namespace_of(space)
        with domain_errors(f"removing {app!r}"):
            self._forget(ns, app)
            for kind in self._app_kinds():
                res = _kind(kind)
                self.counters.requests += 1
                for obj in self.client.list(res, namespace=ns, labels={"cove.dev/app": app}):
                    self.counters.requests += 1
                    self.client.delete(res, obj.metadata.name, namespace=ns)
            try:
                self._patch_claims(ns, app, None)
            except ApiError as err:
                if err.status.code != 404:
                    raise

    def _forget(self, ns: str, app: str | None = None) -> None:
        """Objects about to go are no longer known to be in sync."""
        for key in [k for k in self._verified if k[1] == ns and (
                app is None or k[2] == app or k[2].startswith(f"{app}-"))]:
            del self._verified[key]

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


Key = tuple[str, str, str]  # kind, namespace ("" for the cluster's), name
# Kinds Cove shares with others: it asserts its own labels (server-side apply) and leaves
# the rest alone. Every other kind is Cove's whole.
_SHARED = {"Namespace"}
_ROUTES = {"Ingress", "HTTPRoute"}
# Kinds whose changes the API refuses in place (immutable data, a binding's role).
_RECREATED = {"Secret", "RoleBinding"}
# Kinds whose generation moves with every change to their spec and not with their status.
_GENERATIONAL = {"Deployment", "PodDisruptionBudget"}
# What the cluster's own controllers write into objects Cove owns: kept on a replace.
_THEIRS = ("deployment.kubernetes.io/revision",)


def _key(manifest: Manifest) -> Key:
    meta = manifest["metadata"]
    return (manifest["kind"], meta.get("namespace") or "", meta["name"])


def _stamped(manifest: Manifest) -> Manifest:
    meta = manifest["metadata"]
    return {**manifest, "metadata": {**meta, "annotations": {
        **meta.get("annotations", {}), HASH: digest(manifest)}}}


def _annotation(obj: dict[str, Any], name: str) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(name)


def _holds(want: Manifest, live_meta: dict[str, Any], exact: bool) -> bool:
    """The live labels and annotations are Cove's (exact: and nobody else's, but for
    those the cluster's controllers keep)."""
    if exact and (live_meta.get("finalizers") or live_meta.get("ownerReferences")):
        return False  # Cove sets neither: someone else did (they outlast a delete, or cause one)
    for field in ("labels", "annotations"):
        ours, theirs = want["metadata"].get(field) or {}, dict(live_meta.get(field) or {})
        if exact:
            for kept in _THEIRS:
                theirs.pop(kept, None)
            if theirs != ours:
                return False
        elif any(theirs.get(k) != v for k, v in ours.items()):
            return False
    return True


def _token(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """What changes when anyone changes the object (status aside, where it can)."""
    meta = obj["metadata"]
    moved = str(meta.get("generation")) if kind in _GENERATIONAL \
        else meta.get("resourceVersion", "")
    return (meta.get("uid", ""), moved)


def _carry_over(want: Manifest, live: dict[str, Any]) -> Manifest:
    """Cove's manifest as a replace of the live object: what the cluster assigned or its
    controllers keep (a Service's address, an autoscaler's replica count) stays."""
    meta = dict(want["metadata"])
    meta["resourceVersion"] = live["metadata"]["resourceVersion"]
    kept = {k: v for k, v in (live["metadata"].get("annotations") or {}).items()
            if k in _THEIRS}
    if kept:
        meta["annotations"] = {**meta.get("annotations", {}), **kept}
    out = {**want, "metadata": meta}
    spec: dict[str, Any] = want.get("spec") or {}
    live_spec: dict[str, Any] = live.get("spec") or {}
    if want["kind"] == "Deployment" and "replicas" not in spec and "replicas" in live_spec:
        out["spec"] = {**spec, "replicas": live_spec["replicas"]}
    if want["kind"] == "Service":
        out["spec"] = {**spec, **{k: live_spec[k] for k in ("clusterIP", "clusterIPs")
                                  if k in live_spec}}
    return out


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as far as it says what runs: no status, no bookkeeping metadata."""
    meta = obj.get("metadata") or {}
    return {**{k: v for k, v in obj.items()
               if k not in ("metadata", "status", "apiVersion", "kind")},
            "metadata": {k: meta.get(k) for k in ("labels", "annotations", "ownerReferences",
                                                  "finalizers")}}


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
