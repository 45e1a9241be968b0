"""Provisioning at scale on the test control plane: spaces x apps, then unchanged passes.

Prints the time to converge (every Deployment ready), the API requests and writes Cove
issued, and the same for a reconcile pass of the unchanged state as the running server
makes it (spaces and apps; ideally zero writes), both with what Cove last saw in sync and,
as after a restart, without (every object is then compared by a server-side dry run).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
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


def measured(cluster: KubernetesCluster, work: Callable[[], object]) -> tuple[float, int, int]:
    before_req, before_writes = cluster.counters.requests, cluster.counters.writes
    began = time.perf_counter()
    work()
    return (time.perf_counter() - began, cluster.counters.requests - before_req,
            cluster.counters.writes - before_writes)


def pass_figures(took: tuple[float, int, int]) -> dict[str, float | int]:
    return {"s": round(took[0], 2), "api_requests": took[1], "writes": took[2]}


def main() -> None:
    # kwok nodes hold 110 pods each, like real ones: enough nodes for every instance
    os.environ.setdefault("KWOK_NODES", str(SPACES * APPS // 100 + 2))
    plane = start_control_plane(Path(tempfile.mkdtemp(prefix="cove-bench-k8s-")))
    try:
        cluster = KubernetesCluster(plane.admin())
        spaces, apps = states()
        began = time.perf_counter()

        def first() -> None:
            for space in spaces:  # as spaces are created, one by one
                cluster.provision_space(space)
            cluster.reconcile(apps)

        applied, requests, writes = measured(cluster, first)
        ready = 0
        while ready < len(apps):
            ready = sum(1 for d in cluster.client.list(Deployment, namespace="*")
                        if (d.status.readyReplicas or 0) >= 1 if d.status)
            time.sleep(1)
        converged = time.perf_counter() - began
        warm = measured(cluster, lambda: cluster.reconcile(apps, spaces))
        restarted = KubernetesCluster(plane.admin())
        cold = measured(restarted, lambda: restarted.reconcile(apps, spaces))
    finally:
        plane.down()
    emit("k8s_provision", {
        "spaces": SPACES, "apps": len(apps), "unit": "seconds",
        "first": {"apply_s": round(applied, 2), "converged_s": round(converged, 2),
                  "api_requests": requests, "writes": writes},
        "unchanged_pass": pass_figures(warm),
        "unchanged_pass_after_a_restart": pass_figures(cold),
    })


if __name__ == "__main__":
    main()
