"""Provisioning at scale on the test control plane: spaces x apps, then an unchanged pass.

Prints the time to converge (every Deployment ready), the API requests and writes Cove
issued, and the same for a second reconcile of the unchanged state (ideally zero writes).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import yaml
from lightkube.resources.apps_v1 import Deployment
from tests.support.k8s import start_control_plane

from bench.common import emit
from cove.adapters.runtime.kubernetes.cluster import KubernetesCluster
from cove.domain.roles import Role
from cove.domain.template import parse_template
from cove.ports.pool import AppState, ProcessState, SpaceState
from cove.settings import DEFAULT_TEMPLATE

SPACES = int(os.environ.get("BENCH_SPACES", "100"))
APPS = int(os.environ.get("BENCH_APPS", "10"))
TEMPLATE = parse_template(yaml.safe_load(DEFAULT_TEMPLATE.read_text()))


def states() -> tuple[list[SpaceState], list[AppState]]:
    spaces = [SpaceState(f"b{n:03d}", TEMPLATE, ((f"user{n}", Role.ADMIN),))
              for n in range(SPACES)]
    apps = [AppState(space=s.name, app=f"app{m}", release=1,
                     image="registry.test/hello@sha256:" + "c" * 64, config={"N": str(m)},
                     processes=(ProcessState("web", None, 1, TEMPLATE.sizes["small"]),),
                     hostnames=(f"app{m}-{s.name}.localhost",))
            for s in spaces for m in range(APPS)]
    return spaces, apps


def reconcile(cluster: KubernetesCluster, spaces: list[SpaceState],
              apps: list[AppState]) -> tuple[float, int, int]:
    before_req, before_writes = cluster.counters.requests, cluster.counters.writes
    began = time.perf_counter()
    for space in spaces:
        cluster.provision_space(space)
    cluster.reconcile(apps)
    return (time.perf_counter() - began, cluster.counters.requests - before_req,
            cluster.counters.writes - before_writes)


def main() -> None:
    # kwok nodes hold 110 pods each, like real ones: enough nodes for every instance
    os.environ.setdefault("KWOK_NODES", str(SPACES * APPS // 100 + 2))
    plane = start_control_plane(Path(tempfile.mkdtemp(prefix="cove-bench-k8s-")))
    try:
        cluster = KubernetesCluster(plane.admin())
        spaces, apps = states()
        began = time.perf_counter()
        applied, requests, writes = reconcile(cluster, spaces, apps)
        ready = 0
        while ready < len(apps):
            ready = sum(1 for d in cluster.client.list(Deployment, namespace="*")
                        if (d.status.readyReplicas or 0) >= 1 if d.status)
            time.sleep(1)
        converged = time.perf_counter() - began
        again, requests2, writes2 = reconcile(cluster, spaces, apps)
    finally:
        plane.down()
    emit("k8s_provision", {
        "spaces": SPACES, "apps": len(apps), "unit": "seconds",
        "first": {"apply_s": round(applied, 2), "converged_s": round(converged, 2),
                  "api_requests": requests, "writes": writes},
        "unchanged_second_pass": {"s": round(again, 2), "api_requests": requests2,
                                  "writes": writes2},
    })


if __name__ == "__main__":
    main()
