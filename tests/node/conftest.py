"""A Cove whose pool is a cluster with a real node: pods run, Traefik routes, kube-router
enforces NetworkPolicies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cove import CoveServer, make_server
from tests.support.k8s import RealNode, pools_file, start_real_node
from tests.support.services import Registry

DOMAIN = "apps.node.test"


@pytest.fixture(scope="package")
def real_node(workdir: Path) -> Iterator[RealNode]:
    node = start_real_node(workdir / "real-node")
    yield node
    if node.plane.state.joinpath("node", "up").exists():
        node.down()  # the last test took it down itself, unless it failed first


@pytest.fixture(scope="package")
def ncove(workdir: Path, real_node: RealNode, registry: Registry) -> Iterator[CoveServer]:
    """Cove with the pool "node": the real node's cluster, routed by its Traefik."""
    env = real_node.env
    pools = pools_file(workdir / "node-pools.yaml", "node", real_node.plane.kubeconfig,
                       base_domain=DOMAIN, ingress_class=env["INGRESS_CLASS"],
                       router_namespace=env["ROUTER_NAMESPACE"],
                       registry=f"{registry.host}/pool")
    server = make_server(workdir / "npool", COVE_POOLS=str(pools))
    server.start()
    server.admin("nora")
    yield server
    server.teardown()
