"""What Cove needs from the host, in one list.

`scripts/install-deps` installs the packages of whatever is missing from it, `cove-server
doctor` checks it, and the fresh-machine test checks it on a bare Debian: a tool added here
is installed and checked everywhere at once. This module uses only the standard library, so
the install script can run it with the distribution's Python before anything else is there:

    python3 src/cove/preflight/requirements.py missing [--scope all]
"""

from __future__ import annotations

import glob
import re
import shutil
import sys
from dataclasses import dataclass

# Where podman looks for its helper programs (netavark, aardvark-dns, catatonit): they are
# not on PATH, and podman fails at its first network operation when one is missing.
PODMAN_HELPER_DIRS = ("/usr/local/libexec/podman", "/usr/local/lib/podman",
                      "/usr/libexec/podman", "/usr/lib/podman")

# What each part of Cove is, for the messages; the order is the order of the checks.
SCOPES = {
    "runtime": "runs the apps' instances",
    "router": "routes the apps' URLs",
    "builder": "builds apps from source",
    "registry": "pulls and inspects images",
    "stacks": "makes the stacks that buildpacks build on",
    "run": "`make run` (the local registry and the example app)",
    "tests": "the test suite and the benchmarks",
}
SERVER_SCOPES = ("runtime", "router", "builder", "registry", "stacks")


@dataclass(frozen=True)
class Tool:
    name: str
    package: str  # the Debian package that provides it
    scope: str  # a key of SCOPES
    why: str
    paths: tuple[str, ...] = ()  # absolute places to look instead of PATH
    version_args: tuple[str, ...] = ()
    minimum: tuple[int, ...] = ()

    def locate(self, path: str | None = None) -> str | None:
        """Where the tool is on this machine, or None."""
        if self.paths:
            found = (hit for pattern in self.paths for hit in sorted(glob.glob(pattern)))
            return next(found, None)
        return shutil.which(self.name, path=path)


def _helper(name: str) -> tuple[str, ...]:
    return tuple(f"{d}/{name}" for d in PODMAN_HELPER_DIRS)


TOOLS: tuple[Tool, ...] = (
    Tool("podman", "podman", "runtime", "runs every instance", version_args=("--version",),
         minimum=(4, 3)),
    Tool("conmon", "conmon", "runtime", "podman's monitor of each container",
         version_args=("--version",)),
    Tool("runc", "runc", "runtime", "the OCI runtime (crun refuses hybrid cgroups)",
         version_args=("--version",), minimum=(1, 1)),
    Tool("netavark", "netavark", "runtime", "podman's network stack: one network per space",
         paths=_helper("netavark"), version_args=("--version",)),
    Tool("aardvark-dns", "aardvark-dns", "runtime", "names of instances inside a space",
         paths=_helper("aardvark-dns"), version_args=("--version",)),
    Tool("catatonit", "catatonit", "runtime", "the init that reaps zombies and forwards "
         "SIGTERM as PID 1 of each instance",
         paths=(*_helper("catatonit"), "/usr/bin/catatonit")),
    Tool("iptables", "iptables", "runtime", "keeps instances and builds off the host's "
         "services", version_args=("--version",)),
    Tool("ip6tables", "iptables", "runtime", "the same guard for IPv6",
         version_args=("--version",)),
    Tool("nginx", "nginx-light", "router", "the router", version_args=("-v",),
         minimum=(1, 18)),
    Tool("buildah", "buildah", "builder", "builds images from Dockerfiles and buildpacks",
         version_args=("--version",), minimum=(1, 28)),
    Tool("git", "git", "builder", "one repository per app, `git push` deploys",
         version_args=("--version",)),
    Tool("ca-certificates", "ca-certificates", "registry", "TLS to image registries",
         paths=("/etc/ssl/certs/ca-certificates.crt",)),
    Tool("skopeo", "skopeo", "registry", "resolves image tags to digests, carries built "
         "images out of the build sandbox",
         version_args=("--version",)),
    Tool("debootstrap", "debootstrap", "stacks", "lays down the stacks from Debian "
         "packages", version_args=("--version",)),
    Tool("docker-registry", "docker-registry", "run", "the local OCI registry of `make run`"),
    Tool("curl", "curl", "run", "`make run` waits for Cove with it",
         version_args=("--version",)),
    Tool("go", "golang-go", "run", "builds the example app and the Kubernetes test binaries",
         version_args=("version",)),
    Tool("make", "make", "run", "`make run` and `make test`", version_args=("--version",)),
    Tool("postgres", "postgresql", "tests", "the PostgreSQL store tests",
         paths=("/usr/lib/postgresql/*/bin/postgres",), version_args=("--version",)),
    Tool("busybox", "busybox-static", "tests", "the tests' small images",
         version_args=("--help",)),
    Tool("openssl", "openssl", "tests", "certificates of the Kubernetes test control plane",
         version_args=("version",)),
    Tool("wrk", "wrk", "tests", "load in the benchmarks", version_args=("--version",)),
    Tool("runuser", "util-linux", "tests", "runs PostgreSQL as its own user"),
    # The tests' real Kubernetes node (scripts/k8s-node).
    Tool("containerd", "containerd", "tests", "the container runtime of the tests' "
         "Kubernetes node", version_args=("--version",)),
    Tool("cni-bridge", "containernetworking-plugins", "tests", "the pod network of the "
         "tests' Kubernetes node", paths=("/usr/lib/cni/bridge",)),
    Tool("ipset", "ipset", "tests", "kube-router's NetworkPolicy sets on the tests' "
         "Kubernetes node", version_args=("--version",)),
    Tool("nft", "nftables", "tests", "kube-proxy's cleanup on the tests' Kubernetes node",
         version_args=("--version",)),
    Tool("nfacct", "nfacct", "tests", "removes kube-proxy's packet counters with the tests' "
         "Kubernetes node", version_args=("version",)),
    Tool("conntrack", "conntrack", "tests", "kube-proxy clears stale flows with it",
         version_args=("--version",)),
    Tool("socat", "socat", "tests", "forwards the tests' pods to the Kubernetes API server",
         version_args=("-V",)),
)


def tools(scopes: tuple[str, ...] = SERVER_SCOPES) -> list[Tool]:
    return [t for t in TOOLS if t.scope in scopes]


def missing(scopes: tuple[str, ...] = SERVER_SCOPES, path: str | None = None) -> list[Tool]:
    return [t for t in tools(scopes) if t.locate(path) is None]


def parse_version(text: str) -> tuple[int, ...]:
    """The first dotted number in a tool's version output (`nginx version: nginx/1.22.1`)."""
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g) for g in found.groups() if g is not None) if found else ()


def main(argv: list[str]) -> int:
    """`missing [--scope all]`: the Debian packages to install, one per line."""
    if not argv or argv[0] != "missing":
        print("usage: requirements.py missing [--scope all|SCOPE,...]", file=sys.stderr)
        return 2
    scopes: tuple[str, ...] = SERVER_SCOPES
    if len(argv) == 3 and argv[1] == "--scope":
        scopes = tuple(SCOPES) if argv[2] == "all" else tuple(argv[2].split(","))
    for package in dict.fromkeys(t.package for t in missing(scopes)):
        print(package)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
