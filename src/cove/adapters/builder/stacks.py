"""Stacks: the images buildpacks build on (build image) and apps run on (run image).

`cove-server stacks build` (or `cove stacks build` as a platform admin) makes both from
Debian packages: debootstrap lays down the run image (minbase plus the language runtimes)
against a Debian mirror and buildah imports the tree, so no container registry is needed;
the build image is the run image plus compilers and package managers, installed from the
same mirror. Apps' images hold only the run image and what their build produced. The
builder image (the run image plus Debian's buildah) is the sandbox every build runs in.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cove.adapters.builder.sandbox import BUILDER_FILES
from cove.adapters.engine import Engine, EngineError
from cove.domain.contract import BUILD_IMAGE, BUILDER_IMAGE, RUN_IMAGE

RUN_PACKAGES = ("python3", "nodejs", "ca-certificates", "tzdata")
BUILDER_PACKAGES = ("buildah", "skopeo")
BUILD_PACKAGES = ("python3-venv", "python3-dev", "npm", "golang-go", "git", "gcc", "libc6-dev")
MIRROR = "http://deb.debian.org/debian"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Go's standard library compiled once, with the Go buildpack's settings: builds start from
# a copy of this cache instead of compiling it every time (half a minute on two cores).
GO_STD_CACHE_DIR = "/var/cache/cove/go-build"
GO_STD_CACHE = (f"GOCACHE={GO_STD_CACHE_DIR} CGO_ENABLED=0 GOFLAGS=-trimpath go build std && "
                "chmod -R a+rX /var/cache/cove")


@dataclass(frozen=True)
class Stack:
    build: str = BUILD_IMAGE
    run: str = RUN_IMAGE
    builder: str = BUILDER_IMAGE

    def images(self) -> tuple[str, str, str]:
        return self.run, self.build, self.builder


DEFAULT_STACK = Stack()


def _exists(engine: Engine, image: str) -> bool:
    return engine.run("image", "exists", image, check=False).returncode == 0


def stack_exists(engine: Engine, stack: Stack = DEFAULT_STACK) -> bool:
    return all(_exists(engine, image) for image in stack.images())


def build_stack(engine: Engine, emit: Callable[[str], None] = print,
                stack: Stack = DEFAULT_STACK, mirror: str = MIRROR,
                suite: str = "bookworm", only_missing: bool = False) -> Stack:
    """Make the stack's images (with `only_missing`, those not there yet)."""
    if not (only_missing and _exists(engine, stack.run)):
        _build_run_image(engine, emit, stack.run, mirror, suite)
    if not (only_missing and _exists(engine, stack.build)):
        _build_on_run_image(engine, emit, stack.run, stack.build, BUILD_PACKAGES,
                            f"{SETUID_SWEEP} && {GO_STD_CACHE}", BUILD_CONFIG)
    if not (only_missing and _exists(engine, stack.builder)):
        _build_on_run_image(engine, emit, stack.run, stack.builder, BUILDER_PACKAGES,
                            SETUID_SWEEP, BUILDER_CONFIG, files=BUILDER_FILES)
    emit(f"-----> stack ready: build image {stack.build}, run image {stack.run}, "
         f"build sandbox {stack.builder}")
    return stack


def _build_run_image(engine: Engine, emit: Callable[[str], None], image: str,
                     mirror: str, suite: str) -> None:
    with tempfile.TemporaryDirectory(prefix="cove-stack-") as work:
        root = Path(work) / "rootfs"
        emit(f"-----> debootstrap {suite} (minbase + {', '.join(RUN_PACKAGES)}) from {mirror}")
        proc = subprocess.run(["debootstrap", "--variant=minbase",
                               f"--include={','.join(RUN_PACKAGES)}", suite, str(root), mirror],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"debootstrap failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        _trust_local_cas(root, emit)
        _drop_setuid(root)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / junk).glob("*"):
                if item.is_file():
                    item.unlink()
        emit(f"-----> importing the tree as {image}")
        ctr = _buildah(engine, "from", "scratch").strip()
        try:
            _buildah(engine, "copy", ctr, f"{root}/", "/")
            _buildah(engine, "config", "--env", "LANG=C.UTF-8", "--env", f"PATH={PATH}",
                     # Node.js reads only its own CA list unless told otherwise.
                     "--env", f"NODE_EXTRA_CA_CERTS={BUNDLE}",
                     "--label", "org.opencontainers.image.title=cove-stack-run", ctr)
            _buildah(engine, "commit", "--quiet", ctr, image)
        finally:
            _buildah(engine, "rm", ctr)
        shutil.rmtree(root, ignore_errors=True)


BUILD_CONFIG = ("--env", "GOTOOLCHAIN=local", "--env", "CGO_ENABLED=0",
                "--env", "npm_config_update_notifier=false", "--env", "npm_config_fund=false",
                "--env", "npm_config_audit=false",
                "--label", "org.opencontainers.image.title=cove-stack-build")
BUILDER_CONFIG = ("--env", "BUILDAH_ISOLATION=chroot", "--env", "STORAGE_DRIVER=overlay",
                  "--label", "org.opencontainers.image.title=cove-builder")


def _build_on_run_image(engine: Engine, emit: Callable[[str], None], run_image: str,
                        image: str, packages: tuple[str, ...], then: str,
                        config: tuple[str, ...], files: dict[str, str] | None = None) -> None:
    emit(f"-----> {image}: {run_image} + {', '.join(packages)}")
    ctr = _buildah(engine, "from", run_image).strip()
    try:
        install = ("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -qq "
                   f"-y --no-install-recommends {' '.join(packages)} >/dev/null && "
                   f"apt-get clean && rm -rf /var/lib/apt/lists/* && {then}")
        _buildah(engine, "run", "--network", "host", ctr, "--", "sh", "-c", install)
        with tempfile.TemporaryDirectory(prefix="cove-stack-files-") as work:
            for n, (path, text) in enumerate((files or {}).items()):
                (Path(work) / str(n)).write_text(text)
                _buildah(engine, "copy", "--chmod", "0644", ctr, str(Path(work) / str(n)),
                         path)
        _buildah(engine, "config", *config, ctr)
        _buildah(engine, "commit", "--quiet", ctr, image)
    finally:
        _buildah(engine, "rm", ctr)


LOCAL_CAS = Path("/usr/local/share/ca-certificates")
# Builds run code from the tenant's dependencies: no program in a stack may raise a
# process's privileges (su, passwd, mount, ... lose their setuid and setgid bits).
SETUID_SWEEP = "find / -xdev -type f -perm /6000 -exec chmod ug-s {} +"


def _drop_setuid(root: Path) -> None:
    subprocess.run(["chroot", str(root), "sh", "-c", SETUID_SWEEP], check=True,
                   capture_output=True)


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
    try:
        return engine.buildah(*args)
    except EngineError as err:
        raise RuntimeError(f"buildah {args[0]} failed: {err.stderr}") from err
