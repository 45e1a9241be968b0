"""Stacks: the base image buildpacks build on and apps run on, made from Debian packages.

`cove-server stacks build` runs debootstrap (minbase plus the language runtimes the
buildpacks need) against a Debian mirror and imports the tree as an image with buildah,
so no container registry is needed.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from cove.adapters.runtime.local.engine import Engine

STACK = "localhost/cove/stack:bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
MIRROR = "http://deb.debian.org/debian"


def stack_exists(engine: Engine, image: str = STACK) -> bool:
    return engine.run("image", "exists", image, check=False).returncode == 0


def build_stack(engine: Engine, emit: Callable[[str], None] = print, image: str = STACK,
                mirror: str = MIRROR, suite: str = "bookworm") -> str:
    with tempfile.TemporaryDirectory(prefix="cove-stack-") as work:
        root = Path(work) / "rootfs"
        emit(f"-----> debootstrap {suite} (minbase + {', '.join(PACKAGES)}) from {mirror}")
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                        suite, str(root), mirror], check=True, capture_output=True)
        _trust_local_cas(root, emit)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / junk).glob("*"):
                if item.is_file():
                    item.unlink()
        emit(f"-----> importing the tree as {image}")
        ctr = _buildah(engine, "from", "scratch").strip()
        try:
            _buildah(engine, "copy", ctr, f"{root}/", "/")
            _buildah(engine, "config", "--env", "LANG=C.UTF-8", "--env",
                     "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     "--label", "org.opencontainers.image.title=cove-stack", ctr)
            _buildah(engine, "commit", "--quiet", ctr, image)
        finally:
            _buildah(engine, "rm", ctr)
        shutil.rmtree(root, ignore_errors=True)
    emit(f"-----> stack {image} is ready")
    return image


LOCAL_CAS = Path("/usr/local/share/ca-certificates")


def _trust_local_cas(root: Path, emit: Callable[[str], None]) -> None:
    """Certificate authorities the operator added to this host are trusted in builds too
    (a TLS-inspecting proxy in front of the package registries, an internal mirror)."""
    certs = sorted(LOCAL_CAS.glob("**/*.crt")) if LOCAL_CAS.is_dir() else []
    if not certs:
        return
    target = root / LOCAL_CAS.relative_to("/")
    target.mkdir(parents=True, exist_ok=True)
    for cert in certs:
        shutil.copy(cert, target / cert.name)
    subprocess.run(["chroot", str(root), "update-ca-certificates"], check=True,
                   capture_output=True)
    emit(f"-----> trusting {len(certs)} local certificate authorities")


def _buildah(engine: Engine, *args: str) -> str:
    return subprocess.run(["buildah", *args], check=True, capture_output=True, text=True,
                          env=engine.env).stdout
