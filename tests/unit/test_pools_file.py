"""The operator's pools file: what it may say, and the errors it gets when it is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.adapters.runtime.kubernetes.cluster import KubernetesCluster
from cove.bootstrap import load_pools
from cove.domain.errors import Invalid
from cove.ports.pool import Pool
from cove.ports.registry import Destination
from cove.settings import ServerSettings

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def pools(tmp_path: Path, body: str) -> dict[str, Pool]:
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    (tmp_path / "pools.yaml").write_text(body.replace("KC", str(tmp_path / "kubeconfig")))
    return dict(load_pools(ServerSettings(pools_file=tmp_path / "pools.yaml")))


def test_a_pools_registry_is_where_built_images_go(tmp_path: Path) -> None:
    found = pools(tmp_path, "pools:\n"
                  "  plain: {driver: kubernetes, kubeconfig: KC}\n"
                  "  one: {driver: kubernetes, kubeconfig: KC, registry: 10.0.0.5:5000/cove/}\n"
                  "  two: {driver: kubernetes, kubeconfig: KC,\n"
                  "        registry: {push: 127.0.0.1:5000, pull: registry.internal:5000}}\n")
    assert found["plain"].registry is None
    assert found["one"].registry == Destination("10.0.0.5:5000/cove",
                                                            "10.0.0.5:5000/cove")
    assert found["two"].registry == Destination("127.0.0.1:5000",
                                                            "registry.internal:5000")


@pytest.mark.parametrize("body, message", [
    ("pools:\n  local: {driver: kubernetes, kubeconfig: KC}\n", "embedded pool"),
    ("pools:\n  k: {driver: nomad, kubeconfig: KC}\n", "unknown driver 'nomad'"),
    ("pools:\n  k: {driver: kubernetes, kubeconfig: KC, registry: {pull: x}}\n",
     "registry must be host:port or a mapping with push"),
    ("pools:\n  k: {driver: kubernetes, kubeconfig: KC, registry: [a]}\n",
     "registry must be"),
    # Members would be bound as bare names (anyone's), or as the cluster's own identities.
    ("pools:\n  k: {driver: kubernetes, kubeconfig: KC, user_prefix: ''}\n",
     "user_prefix must not be empty"),
    ("pools:\n  k: {driver: kubernetes, kubeconfig: KC, user_prefix: null}\n",
     "user_prefix must not be empty"),
    ("pools:\n  k: {driver: kubernetes, kubeconfig: KC, user_prefix: 'system:'}\n",
     "user_prefix must not start with 'system:'"),
    ("pools:\n  k: {driver: kubernetes, kubeconfig: KC,\n"
     "      user_prefix: 'system:serviceaccount:kube-system:'}\n", "reserved"),
])
def test_mistakes_in_the_pools_file_are_named(tmp_path: Path, body: str,
                                              message: str) -> None:
    with pytest.raises(Invalid, match=message):
        pools(tmp_path, body)


def test_a_pools_user_prefix_names_its_members(tmp_path: Path) -> None:
    found = pools(tmp_path, "pools:\n  k: {driver: kubernetes, kubeconfig: KC,\n"
                  "                    user_prefix: 'oidc:'}\n")
    assert isinstance(found["k"], KubernetesCluster) and found["k"].user_prefix == "oidc:"
