from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cove import CoveServer, make_server
from tests.support.k8s import ControlPlane, pools_file
from tests.support.services import Registry


@pytest.fixture(scope="session")
def kcove(workdir: Path, control_plane: ControlPlane, registry: Registry
          ) -> Iterator[CoveServer]:
    """A Cove with a Kubernetes pool "k8s" (the test control plane) beside the local one."""
    pools = pools_file(workdir / "pools.yaml", "k8s", control_plane.kubeconfig,
                       base_domain="apps.k8s.test", registry=f"{registry.host}/pool")
    server = make_server(workdir / "kpool", COVE_POOLS=str(pools))
    server.start()
    server.admin("operator")
    yield server
    server.teardown()
