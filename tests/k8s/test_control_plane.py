"""Proof that the test control plane is the real thing: RBAC, admission, controllers."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lightkube import ApiError, Client
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.core_v1 import (
    Capabilities,
    Container,
    PodSpec,
    PodTemplateSpec,
    ResourceQuotaSpec,
    ResourceRequirements,
    SeccompProfile,
    SecurityContext,
)
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Pod, ResourceQuota
from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding, RoleBinding

from tests.support.k8s import SCRIPT, ControlPlane

IMAGE = "registry.test/hello:1"  # kwok never pulls it


def wait_for(check: Callable[[], bool], timeout: float = 60, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise TimeoutError(f"timed out waiting for {what}")


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[Callable[..., str]]:
    client = control_plane.admin()
    made: list[str] = []

    def make(labels: dict[str, str] | None = None) -> str:
        name = f"t-{uuid.uuid4().hex[:8]}"
        client.create(Namespace(metadata=ObjectMeta(name=name, labels=labels or {})))
        made.append(name)
        return name

    yield make
    for name in made:
        client.delete(Namespace, name)


def restricted_container(**overrides: object) -> Container:
    ctx = SecurityContext(runAsNonRoot=True, runAsUser=10001, allowPrivilegeEscalation=False,
                          capabilities=Capabilities(drop=["ALL"]),
                          seccompProfile=SeccompProfile(type="RuntimeDefault"))
    for key, value in overrides.items():
        setattr(ctx, key, value)
    return Container(name="app", image=IMAGE, securityContext=ctx,
                     resources=ResourceRequirements(requests={"cpu": "100m", "memory": "64Mi"},
                                                    limits={"cpu": "100m", "memory": "64Mi"}))


def pod(name: str, ns: str, container: Container) -> Pod:
    return Pod(metadata=ObjectMeta(name=name, namespace=ns), spec=PodSpec(containers=[container]))


def test_a_deployment_becomes_ready_on_kwok_nodes(control_plane: ControlPlane,
                                                  namespace: Callable[..., str]) -> None:
    client, ns = control_plane.admin(), namespace()
    labels = {"app": "hello"}
    client.create(Deployment(
        metadata=ObjectMeta(name="hello", namespace=ns),
        spec=DeploymentSpec(replicas=3, selector=LabelSelector(matchLabels=labels),
                            template=PodTemplateSpec(metadata=ObjectMeta(labels=labels),
                                                     spec=PodSpec(containers=[
                                                         restricted_container()])))))
    wait_for(lambda: (client.get(Deployment, "hello", namespace=ns).status.readyReplicas or 0)
             == 3, 90, "3 ready replicas")
    pods = list(client.list(Pod, namespace=ns))
    assert len(pods) == 3 and all(p.spec.nodeName.startswith("kwok-node-") for p in pods)


def test_pod_security_restricted_is_enforced(control_plane: ControlPlane,
                                             namespace: Callable[..., str]) -> None:
    client = control_plane.admin()
    ns = namespace({"pod-security.kubernetes.io/enforce": "restricted"})
    with pytest.raises(ApiError) as privileged:
        client.create(pod("privileged", ns, restricted_container(
            privileged=True, allowPrivilegeEscalation=True)))
    assert privileged.value.status.code == 403
    assert "privileged" in privileged.value.status.message
    with pytest.raises(ApiError) as root:
        client.create(pod("root", ns, restricted_container(runAsNonRoot=False, runAsUser=0)))
    assert root.value.status.code == 403 and "runAsNonRoot" in root.value.status.message
    client.create(pod("compliant", ns, restricted_container()))


def test_resource_quota_rejects_pods_over_it(control_plane: ControlPlane,
                                             namespace: Callable[..., str]) -> None:
    client, ns = control_plane.admin(), namespace()
    client.create(ResourceQuota(metadata=ObjectMeta(name="quota", namespace=ns),
                                spec=ResourceQuotaSpec(hard={"pods": "1", "limits.memory": "1Gi"})))
    wait_for(lambda: client.get(ResourceQuota, "quota", namespace=ns).status.hard is not None,
             30, "the quota controller")
    client.create(pod("first", ns, restricted_container()))
    with pytest.raises(ApiError) as over:
        client.create(pod("second", ns, restricted_container()))
    assert over.value.status.code == 403 and "exceeded quota" in over.value.status.message


def test_rbac_confines_an_editor_to_its_namespace(control_plane: ControlPlane,
                                                  namespace: Callable[..., str]) -> None:
    admin = control_plane.admin()
    mine, theirs = namespace(), namespace()
    admin.create(RoleBinding(
        metadata=ObjectMeta(name="dev-edit", namespace=mine),
        roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="edit"),
        subjects=[Subject(kind="User", name="dev", apiGroup="rbac.authorization.k8s.io")]))
    dev: Client = control_plane.user("dev")
    wait_for(lambda: _can_create_pod(dev, mine), 30, "the binding to take effect")
    with pytest.raises(ApiError) as other:
        dev.create(pod("sneaky", theirs, restricted_container()))
    assert other.value.status.code == 403
    with pytest.raises(ApiError) as escalate:
        dev.create(ClusterRoleBinding(
            metadata=ObjectMeta(name="dev-admin"),
            roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole",
                            name="cluster-admin"),
            subjects=[Subject(kind="User", name="dev", apiGroup="rbac.authorization.k8s.io")]))
    assert escalate.value.status.code == 403


def _can_create_pod(client: Client, ns: str) -> bool:
    try:
        client.create(pod(f"p-{uuid.uuid4().hex[:6]}", ns, restricted_container()))
        return True
    except ApiError:
        return False


def test_deleting_a_namespace_completes(control_plane: ControlPlane) -> None:
    client = control_plane.admin()
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.create(Namespace(metadata=ObjectMeta(name=name)))
    client.create(pod("doomed", name, restricted_container()))
    client.delete(Namespace, name)

    def gone() -> bool:
        try:
            client.get(Namespace, name)
            return False
        except ApiError as err:
            return err.status.code == 404

    wait_for(gone, 120, "the namespace to be finalized")


def test_the_server_reports_its_real_version(control_plane: ControlPlane) -> None:
    import json

    server = json.loads(control_plane.kubectl("version", "-o", "json"))["serverVersion"]
    # the version ldflags took: not the "v0.0.0-master" of an unstamped build
    assert server["gitVersion"].startswith(f"v{server['major']}.{server['minor']}.")
    assert server["major"] == "1" and server["gitTreeState"] == "clean"


def test_an_envtest_assets_directory_is_used_instead_of_building(control_plane: ControlPlane,
                                                                 tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                 "kubectl", "kwok"):
        (assets / name).symlink_to(control_plane.bin / name)
    cache = tmp_path / "cache"
    env = dict(os.environ, COVE_K8S_CACHE=str(cache), KUBEBUILDER_ASSETS=str(assets),
               GOPROXY="off")  # building would need the proxy: prove nothing is built
    proc = subprocess.run([str(SCRIPT), "build"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    built = next(cache.glob("v*/bin"))
    assert (built / "kube-apiserver").resolve() == (control_plane.bin / "kube-apiserver").resolve()
    assert "building" not in proc.stderr
