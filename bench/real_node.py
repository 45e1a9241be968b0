"""A Kubernetes pool on a real node (scripts/k8s-node): what it costs and how fast it is.

Prints: the node's build time (cached; a cold build is timed by `k8s-node build` itself),
the time to a usable cluster (control plane up, then the node Ready with its router and
DNS), pod start latency (a restricted pod of the example image, created to Ready), and
Cove's deploy to the first 200 through the Ingress, interleaved with the same deploy on
the local pool (the baseline: Cove's own router and podman). Medians of BENCH_REPEATS
(default 5) after one warm-up of each, with min/max and the load average.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from lightkube.codecs import from_dict
from lightkube.resources.core_v1 import Pod
from tests.support.cove import CliUser, CoveServer, make_server
from tests.support.k8s import NODE_SCRIPT, RealNode, pools_file, start_real_node

from bench.common import emit, example_in_a_registry, summary

REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
DOMAIN = "apps.node.test"


def timed(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def until_answers(url: str, host: str, marker: str, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if marker in httpx.get(url, headers={"Host": host}, timeout=2).text:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{host} did not answer {marker!r} within {within:.0f}s")


def pod_start(node: RealNode, image: str) -> float:
    """A restricted pod of the example image (already on the node), created to Ready."""
    client = node.plane.admin()
    name = f"start-{uuid.uuid4().hex[:8]}"
    began = time.perf_counter()
    client.create(from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "bench"},
        "spec": {"containers": [{
            "name": "web", "image": image, "imagePullPolicy": "IfNotPresent",
            "readinessProbe": {"httpGet": {"path": "/", "port": 8000},
                               "periodSeconds": 1},
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"}}}]}}))
    while True:
        pod = client.get(Pod, name, namespace="bench")
        if any(c.type == "Ready" and c.status == "True"
               for c in (pod.status.conditions if pod.status else None) or []):
            break
        if time.perf_counter() - began > 120:
            raise TimeoutError(f"pod {name} was not Ready within 120s")
        time.sleep(0.02)
    took = time.perf_counter() - began
    client.delete(Pod, name, namespace="bench", grace_period=0)
    return took


def deploy(user: CliUser, space: str, app: str, image: str, url: str, host: str) -> float:
    user.run("apps", "create", app, "--space", space)
    began = time.perf_counter()
    user.run("deploy", app, image, "--space", space)
    until_answers(url, host, f"from {app} ")
    return time.perf_counter() - began


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="cove-bench-node-"))
    build = timed(lambda: subprocess.run([str(NODE_SCRIPT), "build"], check=True,
                                         capture_output=True))
    registry, image = example_in_a_registry(root)
    began = time.perf_counter()
    node = start_real_node(root / "k8s")
    usable = time.perf_counter() - began
    cove: CoveServer | None = None
    try:
        node.plane.admin().create(from_dict({"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": "bench"}}))
        pod_start(node, image)  # warm-up: the image is pulled once
        starts = [pod_start(node, image) for _ in range(REPEATS)]
        pools = pools_file(root / "pools.yaml", "node", node.plane.kubeconfig,
                           base_domain=DOMAIN, ingress_class=node.env["INGRESS_CLASS"],
                           router_namespace=node.env["ROUTER_NAMESPACE"])
        cove = make_server(root / "cove", COVE_POOLS=str(pools),
                           COVE_LOCAL_REGISTRIES=registry.host)
        cove.start()
        user = cove.admin("bench")
        user.run("spaces", "create", "ondisk")
        user.run("spaces", "create", "onnode", "--pool", "node")
        ingress = f"http://{node.ingress}"
        on_node: list[float] = []
        local: list[float] = []
        for n in range(REPEATS + 1):  # the first of each is the warm-up
            on_node.append(deploy(user, "onnode", f"n{n}", image, ingress,
                                  f"n{n}-onnode.{DOMAIN}"))
            local.append(deploy(user, "ondisk", f"l{n}", image, cove.url,
                                f"l{n}-ondisk.localhost"))
    finally:
        if cove is not None:
            cove.teardown()
        node.down()
        registry.stop()
        load = os.getloadavg()
    emit("real_node", {
        "unit": "seconds", "load_average_1m_at_end": round(load[0], 2),
        "node_build_cached": round(build, 2),
        "usable_cluster": round(usable, 2),
        "pod_start_to_ready": summary(starts),
        "deploy_to_first_200_through_the_ingress": summary(on_node[1:]),
        "baseline_same_deploy_on_the_local_pool": summary(local[1:]),
    })


if __name__ == "__main__":
    main()
