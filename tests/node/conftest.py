"""A Cove whose pool is a cluster with a real node: pods run, Traefik routes, kube-router
enforces NetworkPolicies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cove import CoveServer, make_server
from tests.support.k8s import RealNode, start_real_node
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
    pools = workdir / "node-pools.yaml"
    pools.write_text(f"pools:\n  node:\n    driver: kubernetes\n"
                     f"    kubeconfig: {real_node.plane.kubeconfig}\n"
                     f"    base_domain: {DOMAIN}\n"
                     f"    ingress_class: {env['INGRESS_CLASS']}\n"
                     f"    router_namespace: {env['ROUTER_NAMESPACE']}\n"
                     f"    registry: {registry.host}/pool\n")
    server = make_server(workdir / "npool", COVE_POOLS=str(pools))
    server.start()
    server.admin("nora")
    yield server
    server.teardown()
