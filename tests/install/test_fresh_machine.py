"""A bare Debian 12 gets everything Cove needs from `scripts/install-deps`, and nothing else.

A green CI on a machine that already has a package proves nothing about a fresh one: this
test lays down a minimal Debian (debootstrap minbase, cached), runs the repository's own
install script in it, and asks `cove-server doctor` there whether every tool of the one list
in `cove.preflight.requirements` (runtime, router, builder, registry, `make run`, tests) and
every Python package is present. Then it hides netavark, the package that was once missing,
to show that the check names it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.preflight.requirements import TOOLS
from cove.settings import ServerSettings
from tests.support.services import ROOT, run

pytestmark = pytest.mark.integration

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cove" / "fresh"
SUITE = "bookworm"
REPO = "/opt/cove"
# Services that packages' scripts would start in the chroot would start on the host's
# network (nginx on :80, the registry on :5000): policy-rc.d forbids it.
POLICY_RC = "#!/bin/sh\nexit 101\n"
SITE_CONFIG = ("/usr/local/share/ca-certificates", "/etc/pip.conf")


def _rootfs_tarball() -> Path:
    """debootstrap minbase once; later runs unpack the cached tarball (about 2 s)."""
    tarball = CACHE / f"{SUITE}-minbase.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    build = CACHE / "debootstrap.tmp"
    shutil.rmtree(build, ignore_errors=True)
    run("debootstrap", "--variant=minbase", SUITE, str(build),
        ServerSettings.from_env().debian_mirror, timeout=900)
    run("tar", "-C", str(build), "-cf", f"{tarball}.tmp", ".", timeout=300)
    os.replace(f"{tarball}.tmp", tarball)
    shutil.rmtree(build)
    return tarball


class Chroot:
    """A fresh root filesystem with the repository copied in; commands run in their own
    mount namespace, so /proc, /dev and the caches are unmounted when each one ends."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.caches = {CACHE / "apt-archives": "var/cache/apt/archives",
                       CACHE / "pip": "root/.cache/pip"}

    def sh(self, script: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
        mounts = "".join(f"mkdir -p {self.root}/{inner} && mount --bind {outer} "
                         f"{self.root}/{inner} && " for outer, inner in self.caches.items())
        outer = (f"mount -t proc proc {self.root}/proc && mount --rbind /dev {self.root}/dev "
                 f"&& mount --rbind /sys {self.root}/sys && {mounts}"
                 f'exec chroot {self.root} /usr/bin/env -i HOME=/root CI=true '
                 "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
                 f'/bin/bash -c "$0"')
        for cache in self.caches:
            cache.mkdir(parents=True, exist_ok=True)
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "--",
                               "/bin/sh", "-c", outer, script],
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chroot]:
    root = tmp_path_factory.mktemp("fresh") / "root"
    root.mkdir()
    run("tar", "-C", str(root), "-xf", str(_rootfs_tarball()), timeout=300)
    (root / "usr/sbin/policy-rc.d").write_text(POLICY_RC)
    (root / "usr/sbin/policy-rc.d").chmod(0o755)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    # What an operator configured for the site, not for Cove: certificate authorities of a
    # TLS-inspecting proxy or an internal mirror, and pip's settings.
    for site in SITE_CONFIG:
        if Path(site).exists():
            target = root / site.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if Path(site).is_dir():
                shutil.copytree(site, target, dirs_exist_ok=True)
            else:
                shutil.copy(site, target)
    # The repository as a clean clone has it (tracked and new files, nothing ignored).
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=ROOT, capture_output=True, check=True,
                           timeout=60)
    repo = root / REPO.lstrip("/")
    repo.mkdir(parents=True)
    for name in filter(None, files.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    yield Chroot(root)
    shutil.rmtree(root, ignore_errors=True)


def test_install_deps_on_a_bare_debian_installs_everything_cove_uses(fresh: Chroot) -> None:
    # Before: a bare minbase lacks most of what Cove runs (the control for the check below).
    before = fresh.sh(f"cd {REPO} && python3 --version || echo no-python")
    assert "no-python" in before.stdout, "minbase unexpectedly ships Python"

    install = fresh.sh(f"cd {REPO} && scripts/install-deps")
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    doctor = fresh.sh(f"cd {REPO} && cove-server doctor --only install --scope all")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    for tool in TOOLS:
        assert any(line.startswith("pass") and f" {tool.name} " in f"{line} "
                   for line in doctor.stdout.splitlines()), (tool.name, doctor.stdout)
    # The Python packages of pyproject.toml, the dev extra included, are checked too.
    passed = [line for line in doctor.stdout.splitlines() if line.startswith("pass")]
    for package in ("fastapi", "psycopg", "pytest", "mypy"):
        assert any(f" {package} " in line for line in passed), (package, doctor.stdout)
    # What broke `make run` once: podman configured for netavark finds it.
    assert any(line.startswith("pass") and "network backend" in line
               for line in doctor.stdout.splitlines()), doctor.stdout

    # Hiding the once-missing binary makes the same check fail and say what to install.
    hidden = fresh.sh("mv /usr/lib/podman/netavark /usr/lib/podman/netavark.hidden && "
                      f"cd {REPO} && cove-server doctor --only install --scope all; "
                      "echo exit=$?; mv /usr/lib/podman/netavark.hidden /usr/lib/podman/netavark")
    assert "exit=1" in hidden.stdout, hidden.stdout
    failed = [line for line in hidden.stdout.splitlines() if line.startswith("FAIL")]
    assert any("netavark" in line and "apt-get install netavark" in line for line in failed), \
        hidden.stdout
