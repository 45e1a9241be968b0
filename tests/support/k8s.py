"""The real Kubernetes control plane (scripts/k8s-testenv) and clients for tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lightkube import Client, KubeConfig

from tests.support.services import ROOT

SCRIPT = ROOT / "scripts" / "k8s-testenv"


def pools_file(path: Path, pool: str, kubeconfig: Path, **settings: str) -> Path:
    """A pools file naming one Kubernetes pool (the operator's COVE_POOLS)."""
    import yaml

    path.write_text(yaml.safe_dump({"pools": {pool: {
        "driver": "kubernetes", "kubeconfig": str(kubeconfig), **settings}}}))
    return path


def role_binding(ns: str, name: str, role: str, user: str) -> dict[str, object]:
    """A RoleBinding of cluster role `role` to the cluster user `user`."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": user}]}


def _testenv(state: Path, *args: str, timeout: float = 3600, script: Path = SCRIPT,
             **env: str) -> str:
    proc = subprocess.run([str(script), *args], env=dict(os.environ, COVE_K8S_DIR=str(state),
                                                          **env),
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{proc.stderr[-4000:]}"
                           f"{proc.stdout[-2000:]}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


@dataclass
class ControlPlane:
    state: Path
    kubeconfig: Path
    bin: Path

    def kubectl(self, *args: str, kubeconfig: Path | None = None) -> str:
        return subprocess.run([str(self.bin / "kubectl"), "--kubeconfig",
                               str(kubeconfig or self.kubeconfig), *args],
                              capture_output=True, text=True, check=True, timeout=120).stdout

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


def start_control_plane(state: Path, **env: str) -> ControlPlane:
    kubeconfig = _testenv(state, "up", **env)
    exports = subprocess.run([str(SCRIPT), "env"], capture_output=True, text=True,
                             env=dict(os.environ, COVE_K8S_DIR=str(state)), check=True,
                             timeout=60).stdout
    bin_dir = exports.split("export PATH=", 1)[1].split(":", 1)[0]
    return ControlPlane(state, Path(kubeconfig), Path(bin_dir))


NODE_SCRIPT = ROOT / "scripts" / "k8s-node"


def _output(*command: str) -> str:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    return proc.stdout if proc.returncode == 0 else ""


def _commands() -> set[str]:
    out = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        if cmdline.parent.name == str(os.getpid()):
            continue
        with contextlib.suppress(OSError):  # gone meanwhile
            out.add(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return out


def node_traces(state: Path, node_ip: str = "10.213.0.1") -> dict[str, set[str]]:
    """What of a real node can outlive it on the host: its processes (their command lines
    name its state directory, or bind its IP), ipsets, nfacct counters, pods' network
    namespaces, and its cgroup /cove-node in each hierarchy."""
    cgroups = Path("/sys/fs/cgroup")
    return {
        "processes": {c for c in _commands() if str(state) in c or f"bind={node_ip}" in c},
        "ipsets": set(_output("ipset", "list", "-n").split()),
        # `{ pkts = ..., bytes = ... } = NAME;`
        "nfacct counters": {line.rsplit(" = ", 1)[1].rstrip(";")
                            for line in _output("nfacct", "list").splitlines() if " = " in line},
        "network namespaces": {p.name for p in Path("/run/netns").glob("cni-*")},
        "cgroups": {str(d) for d in (*cgroups.glob("*/cove-node"), *cgroups.glob("cove-node"))},
    }


@dataclass
class RealNode:
    """A control plane of its own with one real node (scripts/k8s-node): containerd,
    kubelet, kube-proxy, kube-router enforcing NetworkPolicies, Traefik as the router."""

    plane: ControlPlane
    env: dict[str, str]  # what `k8s-node up` printed: NODE_IP, INGRESS, INGRESS_CLASS, ...
    before: dict[str, set[str]]  # node_traces before `up`: what others had on the host

    @property
    def ingress(self) -> str:
        return self.env["INGRESS"]

    def down(self) -> str:
        """Remove the node (its `down` fails if the host's iptables differ from before),
        then its control plane; return what `down` said."""
        proc = subprocess.run([str(NODE_SCRIPT), "down"], capture_output=True, text=True,
                              env=dict(os.environ, COVE_K8S_DIR=str(self.plane.state)),
                              timeout=600)
        self.plane.down()
        if proc.returncode != 0:
            raise RuntimeError(f"k8s-node down failed:\n{proc.stderr[-4000:]}")
        return proc.stderr


def start_real_node(state: Path) -> RealNode:
    before = node_traces(state)
    plane = start_control_plane(state, KWOK_NODES="0")
    try:
        _testenv(state, "up", script=NODE_SCRIPT, timeout=3600)
        out = subprocess.run([str(NODE_SCRIPT), "env"], capture_output=True, text=True,
                             env=dict(os.environ, COVE_K8S_DIR=str(state)), check=True,
                             timeout=60)
    except BaseException:
        subprocess.run([str(NODE_SCRIPT), "down"], env=dict(os.environ, COVE_K8S_DIR=str(state)),
                       capture_output=True, timeout=600)
        plane.down()
        raise
    env = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return RealNode(plane, env, before)
