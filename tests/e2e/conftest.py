from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cove import CoveServer, make_server
from tests.support.k8s import ControlPlane
from tests.support.services import Registry


@pytest.fixture(scope="session")
def cove(workdir: Path, registry: object) -> Iterator[CoveServer]:
    server = make_server(workdir / "e2e")
    server.start()
    yield server
    server.teardown()


@pytest.fixture(scope="session")
def kcove(workdir: Path, control_plane: ControlPlane, registry: Registry
          ) -> Iterator[CoveServer]:
    """A Cove with a Kubernetes pool "k8s" (the test control plane) beside the local one."""
    pools = workdir / "pools.yaml"
    pools.write_text(f"pools:\n  k8s:\n    driver: kubernetes\n"
                     f"    kubeconfig: {control_plane.kubeconfig}\n"
                     f"    base_domain: apps.k8s.test\n"
                     f"    registry: {registry.host}/pool\n")
    server = make_server(workdir / "kpool", COVE_POOLS=str(pools))
    subprocess.run([sys.executable, "-m", "cove.server", "create-admin", "operator"],
                   env=dict(server.env, COVE_ADMIN_PASSWORD="operator-pw1"), check=True,
                   capture_output=True)
    server.start()
    admin = server.user("operator")
    admin.run("login", "operator", "--password-stdin", input="operator-pw1\n")
    yield server
    server.teardown()
