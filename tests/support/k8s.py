"""The real Kubernetes control plane (scripts/k8s-testenv) and clients for tests."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lightkube import Client, KubeConfig

from tests.support.services import ROOT

SCRIPT = ROOT / "scripts" / "k8s-testenv"


def role_binding(ns: str, name: str, role: str, user: str) -> dict[str, object]:
    """A RoleBinding of cluster role `role` to the cluster user `user`."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": user}]}


def _testenv(state: Path, *args: str, timeout: float = 3600) -> str:
    env = dict(os.environ, COVE_K8S_DIR=str(state))
    proc = subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"k8s-testenv {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


@dataclass
class ControlPlane:
    state: Path
    kubeconfig: Path
    bin: Path

    def kubectl(self, *args: str, kubeconfig: Path | None = None) -> str:
        return subprocess.run([str(self.bin / "kubectl"), "--kubeconfig",
                               str(kubeconfig or self.kubeconfig), *args],
                              capture_output=True, text=True, check=True).stdout

    def admin(self) -> Client:
        return Client(KubeConfig.from_file(self.kubeconfig), field_manager="cove-tests")

    def user_kubeconfig(self, name: str, *groups: str) -> Path:
        return Path(_testenv(self.state, "user", name, *groups))

    def user(self, name: str, *groups: str) -> Client:
        """A client that authenticates as an ordinary user, with a real client certificate."""
        return Client(KubeConfig.from_file(self.user_kubeconfig(name, *groups)),
                      field_manager="cove-tests")

    def down(self) -> None:
        _testenv(self.state, "down", timeout=120)


def start_control_plane(state: Path) -> ControlPlane:
    kubeconfig = _testenv(state, "up")
    exports = subprocess.run([str(SCRIPT), "env"], capture_output=True, text=True,
                             env=dict(os.environ, COVE_K8S_DIR=str(state)), check=True).stdout
    bin_dir = exports.split("export PATH=", 1)[1].split(":", 1)[0]
    return ControlPlane(state, Path(kubeconfig), Path(bin_dir))
