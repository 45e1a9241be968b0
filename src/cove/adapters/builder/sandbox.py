"""The build sandbox: buildah runs inside a container whose root is not the host's root.

buildah on the host runs RUN steps as the host's root, and its own bugs have let a step
reach the host's filesystem (CVE-2024-1753 and its kin). So every build runs buildah in a
container made from the stack's builder image, in a user namespace: uid 0 inside is uid
BUILD_UID on the host, which owns nothing there. The container sees only
- the build context and the Dockerfile (read-only),
- the shared base images (stacks, images the operator allows, registry images pinned by
  digest: what any tenant may start from), read-only,
- the space's own image store (its layer cache: an escaped step reaches its own space's
  cache, never another's), and an output directory.
RUN steps run inside with buildah's chroot isolation and a reduced capability set; the
container carries the build limits (memory, CPU, processes), the builds' network, no new
privileges and a read-only root. The built image leaves as an OCI layout, copied into the
host's store with its ids translated back.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from cove.adapters.builder.handover import take_over
from cove.adapters.engine import Engine, EngineError
from cove.domain.errors import BuildFailed

BUILD_UID = 300000  # root of every build sandbox, on the host
ID_RANGE = 65536  # uids and gids 0..65535 inside map to BUILD_UID.. outside
# What the build container itself may do, inside its user namespace only: mount (overlay
# and chroot isolation), chroot, and what package installs need.
SANDBOX_CAPS = "SYS_ADMIN,SYS_CHROOT,SETPCAP,CHOWN,DAC_OVERRIDE,FOWNER,FSETID,SETUID,SETGID"
STEP_CAPS = "CHOWN,DAC_OVERRIDE,FOWNER,FSETID,SETUID,SETGID"  # what a RUN step keeps
BASES = "/var/lib/cove-bases"  # where the shared base images are, inside the sandbox
# The sandbox's own processes (buildah, its threads) share the build's cgroup limits.
OVERHEAD_MB = 256
OVERHEAD_PIDS = 64

STORAGE_CONF = f"""\
[storage]
driver = "overlay"
graphroot = "/var/lib/containers/storage"
runroot = "/run/containers/storage"
[storage.options]
additionalimagestores = ["{BASES}"]
"""
BASES_CONF = f"""\
[storage]
driver = "overlay"
graphroot = "{BASES}"
runroot = "/run/containers/storage"
"""
CONTAINERS_CONF = """\
[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
"""
# The files the builder image carries (see stacks.py).
# In a space's store: the layers of the images its builds hand over, and each build's
# image (its manifest and config, named by the build) beside them on one filesystem.
BLOBS = "cove-blobs"
IMAGES = "cove-images"
SHARED_MARK = "shared-blobs"  # left in a build's output when its image is there

BUILDER_FILES = {"/etc/containers/storage.conf": STORAGE_CONF,
                 "/etc/containers/storage-bases.conf": BASES_CONF,
                 "/etc/containers/containers.conf": CONTAINERS_CONF}


class SharedLock:
    """Many holders of `shared()`, or one of `exclusive()` (builds read the base images
    while an import would change them)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self, wait: bool = True) -> Iterator[bool]:
        def free() -> bool:
            return not self._writer and not self._readers

        with self._cond:
            if not free() and not wait:
                yield False
                return
            self._cond.wait_for(free)
            self._writer = True
        try:
            yield True
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def _owned_dir(path: Path) -> Path:
    """A directory the sandbox's root may write (given to it when made: the watchdog asks
    for a space's store every second)."""
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        return path
    os.chown(path, BUILD_UID, BUILD_UID)
    return path


def tree_size(path: Path, stop_at: int | None = None) -> int:
    """Bytes on disk under `path`; counting stops past `stop_at` (a step writing millions
    of files must not make the count slow)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
        if stop_at is not None and total > stop_at:
            break
    return total


class FileLock:
    """Shared or exclusive, across processes too: installations on one machine may share
    the base images (flock, one open file per holder, so threads contend as well)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def hold(self, exclusive: bool) -> Iterator[None]:
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class Sandbox:
    def __init__(self, engine: Engine, home: Path, image: str,
                 network: Callable[[], str] | None = None, skopeo: str = "skopeo",
                 bases: Path | None = None) -> None:
        self.engine = engine
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.image = image
        self.network = network
        self.skopeo = skopeo
        # The base images: this installation's own, or a directory several share.
        self.shared = bases or home / "bases"
        self.shared.mkdir(parents=True, exist_ok=True)
        self.bases_lock = FileLock(self.shared / "lock")
        self._space_locks: dict[str, SharedLock] = {}
        self._guard = threading.Lock()

    @property
    def bases(self) -> Path:
        return _owned_dir(self.shared / "store")

    def space_store(self, scope: str) -> Path:
        key = hashlib.sha256(scope.encode()).hexdigest()[:24]
        return _owned_dir(self.home / "spaces" / key)

    def space_lock(self, scope: str) -> SharedLock:
        with self._guard:
            return self._space_locks.setdefault(scope, SharedLock())

    @staticmethod
    def base_name(image_id: str) -> str:
        """The name a base has inside the sandbox: its image id, so installations that
        share the base images never confuse two images of one name (and a digest
        reference, which cannot be a tag, gets one)."""
        return f"localhost/cove-base/{image_id}:id"

    # -- base images -------------------------------------------------------------------

    def _present(self) -> set[str]:
        try:
            found = json.loads((self.shared / "images.json").read_text())
        except (OSError, ValueError):
            return set()
        return set(found) if isinstance(found, list) else set()

    def host_id(self, ref: str) -> str | None:
        """The id of an image in the host's store (None: not there)."""
        proc = self.engine.run("image", "inspect", "--format", "{{.Id}}", ref, check=False)
        return proc.stdout.strip().removeprefix("sha256:") or None \
            if proc.returncode == 0 else None

    def host_ids(self, refs: set[str]) -> dict[str, str]:
        """The ids of the images of `refs` the host's store has, asked in one go (an ask
        costs a tenth of a second); those it does not know are left out."""
        if not refs:
            return {}
        ordered = sorted(refs)
        proc = self.engine.run("image", "inspect", "--format", "{{.Id}}", *ordered,
                               check=False)
        found = proc.stdout.split()
        if proc.returncode != 0 or len(found) != len(ordered):
            return {}  # which one is missing is not said in order: ask one by one
        return {ref: i.removeprefix("sha256:") for ref, i in zip(ordered, found, strict=True)}

    def sync_bases(self, wanted: dict[str, str], emit: Callable[[str], None]) -> None:
        """Make base images of the host's store (id: name) available to every sandbox,
        read-only."""
        made = (self.bases / "overlay-images").is_dir()  # an image store at all
        if made and set(wanted) <= self._present():
            return
        with self.bases_lock.hold(exclusive=True):
            present = self._present()
            missing = {i: r for i, r in wanted.items() if i not in present}
            if not missing and (self.bases / "overlay-images").is_dir():
                return
            if missing:
                emit(f"-----> making {', '.join(sorted(missing.values()))} available to "
                     "builds (once)")
            with tempfile.TemporaryDirectory(prefix="cove-bases-", dir=self.home) as work:
                layout = Path(work) / "oci"
                layout.mkdir()
                script = ["true"]
                for n, image_id in enumerate(sorted(missing)):
                    self._export(image_id, f"oci:{layout}:b{n}")
                    script.append(f'buildah tag "$(buildah pull -q oci:/in:b{n})" '
                                  f"{self.base_name(image_id)}")
                os.chmod(work, 0o755)
                name = f"cove-bases-{Path(work).name}"
                try:
                    proc = subprocess.run(self._container(name, [
                        "-v", f"{self.bases}:{BASES}",
                        "-v", f"{layout}:/in:ro",
                        "-e", "CONTAINERS_STORAGE_CONF=/etc/containers/storage-bases.conf"],
                        ["sh", "-ec", " && ".join([*script, "buildah images >/dev/null"])],
                        network="none"),
                        capture_output=True, text=True, env=self.engine.env, timeout=1800)
                finally:
                    self.remove(name)
                if proc.returncode != 0:
                    raise BuildFailed("the base images could not be made available to builds: "
                                      f"{(proc.stderr or proc.stdout).strip()[-500:]}")
            (self.shared / "images.json").write_text(json.dumps(sorted(present | set(missing))))

    def _export(self, image_id: str, dest: str) -> None:
        proc = subprocess.run(
            [self.skopeo, "copy", "--quiet", "--dest-oci-accept-uncompressed-layers",
             f"containers-storage:{image_id}", dest],
            capture_output=True, text=True, env=self.engine.env, timeout=1800)
        if proc.returncode != 0:
            raise BuildFailed(f"could not export base image {image_id[:12]}: "
                              f"{proc.stderr.strip()[-500:]}")

    # -- builds -------------------------------------------------------------------------

    def _container(self, name: str, extra: list[str], command: list[str],
                   network: str | None = None, limits: list[str] | None = None) -> list[str]:
        return [
            self.engine.binary, "run", "--rm", "--pull", "never", "--name", name, "--replace",
            "--uidmap", f"0:{BUILD_UID}:{ID_RANGE}", "--gidmap", f"0:{BUILD_UID}:{ID_RANGE}",
            "--cap-drop", "all", "--cap-add", SANDBOX_CAPS,
            "--security-opt", "no-new-privileges", "--read-only",
            "--tmpfs", "/run", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp",
            # Given here: in a user namespace, the engine's defaults from containers.conf
            # fail to apply (EPERM).
            "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=32768:32768",
            *(["--network", network] if network else []),
            *(limits or []), *extra, self.image, *command]

    @staticmethod
    def hand_over(context: Path) -> None:
        """Give the build context to the sandbox's root (files a tarball made private to
        the host's root would be unreadable in the build). The context is the build's own
        copy; links are changed, never followed."""
        os.lchown(context, BUILD_UID, BUILD_UID)
        for root, dirs, files in os.walk(context):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), BUILD_UID, BUILD_UID)

    def build_command(self, name: str, scope: str, work: Path, context: Path, tag: str,
                      memory_mb: int, cpu_millis: int, pids: int) -> list[str]:
        """The command that builds `context` with `work`/Dockerfile into `work`/out."""
        limits = ["--memory", f"{memory_mb + OVERHEAD_MB}m",
                  "--memory-swap", f"{memory_mb + OVERHEAD_MB}m",
                  "--cpu-period", "100000", "--cpu-quota", str(cpu_millis * 100),
                  "--pids-limit", str(pids + OVERHEAD_PIDS)]
        out = _owned_dir(work / "out")
        for kind in (BLOBS, IMAGES):
            _owned_dir(self.space_store(scope) / kind)
        script = (  # the tag is an argument, never part of the script
            "buildah --log-level error bud --isolation chroot --layers --force-rm "
            f"--cap-drop ALL --cap-add {STEP_CAPS} -f /in/Dockerfile -t \"$1\" /src && "
            # The image's layers go to the space's blob directory, where the layers of
            # earlier builds (the stack's among them) already are: only new ones are
            # written. (A sandbox image without skopeo pushes every layer, as buildah does.)
            "if command -v skopeo >/dev/null; then "
            # (skopeo would re-execute itself in a user namespace of its own, which the
            # sandbox cannot make: it runs in one already. The variable says so, and the
            # storage configuration is then named, as it would be looked for elsewhere.)
            "{ _CONTAINERS_ROOTLESS_UID=1 CONTAINERS_STORAGE_CONF=/etc/containers/storage.conf "
            "skopeo copy --quiet --dest-oci-accept-uncompressed-layers "
            f"--dest-shared-blob-dir /var/lib/containers/storage/{BLOBS} "
            f"containers-storage:\"$1\" oci:/var/lib/containers/storage/{IMAGES}/\"$2\":built "
            "2>/tmp/skopeo.log || "
            "{ cat /tmp/skopeo.log >&2; exit 1; }; } && "  # (its notices are not build output)
            f"touch /out/{SHARED_MARK}; "
            "else buildah --log-level error push --quiet --disable-compression \"$1\" "
            "oci:/out/image:built; fi")
        network = self.network() if self.network else None
        return self._container(name, [
            "-v", f"{self.space_store(scope)}:/var/lib/containers/storage",
            "-v", f"{self.bases}:{BASES}:ro",
            "-v", f"{context}:/src:ro",
            "-v", f"{work / 'in'}:/in:ro",
            "-v", f"{out}:/out"], ["sh", "-c", script, "build", tag, name], network=network,
            limits=limits)

    def remove_interrupted(self) -> int:
        """What the builds of a server that died left: their sandboxes (which run in a
        session of their own, so they outlive it) and work directories. A build's
        sandbox is named after its work directory."""
        left = sorted(p for p in self.home.glob("cove-build-*") if p.is_dir())
        for work in left:
            self.remove(work.name)
            shutil.rmtree(work, ignore_errors=True)
        return len(left)

    def remove(self, name: str) -> None:
        with suppress(EngineError, subprocess.TimeoutExpired):
            self.engine.run("rm", "--force", "--time", "0", name, check=False, timeout=60)

    def handed_over(self, work: Path, scope: str) -> Path:
        """The image a build made, taken over (see handover) into `work`."""
        if (work / "out" / SHARED_MARK).exists():  # in the space's store
            return take_over(self.space_store(scope), (IMAGES, work.name), (BLOBS,),
                             work / "image")
        return take_over(work / "out", ("image",), ("image", "blobs"), work / "image")

    def import_image(self, layout: Path, tag: str, image_id: str | None = None) -> str:
        """Copy an image Cove holds (taken over from a build, or written by Cove) into
        the host's store; its id. Layers the host has are not copied again, and every
        blob copied is checked against its digest. The id is the host store's, not one
        the build names (it could name another space's image); an image Cove wrote
        itself comes with its id (its config's digest)."""
        proc = subprocess.run(
            [self.skopeo, "copy", "--quiet", f"oci:{layout}:built", f"containers-storage:{tag}"],
            capture_output=True, text=True, env=self.engine.env, timeout=1800)
        if proc.returncode != 0:
            raise BuildFailed(f"the built image could not be stored: {proc.stderr.strip()}")
        image_id = image_id or self.host_id(tag)
        if image_id is None:
            raise BuildFailed(f"the built image {tag} is not in this machine's image store")
        return image_id

    def layers(self, scope: str) -> set[str]:
        """What a space's store holds that builds add to: its layer directories and the
        blobs of the images builds handed over (paths under the store)."""
        store = self.space_store(scope)
        found: set[str] = set()
        for kind in ("overlay", f"{BLOBS}/sha256"):
            with suppress(OSError):
                found |= {f"{kind}/{name}" for name in os.listdir(store / kind)}
        return found

    def written(self, scope: str, before: set[str], stop_at: int,
                work: Path | None = None) -> int:
        """Bytes a running build wrote: the layers it added to its space's store (its
        working containers' and those it committed), and the image it hands over."""
        store = self.space_store(scope)
        total = tree_size(work / "out", stop_at) if work else 0
        for name in self.layers(scope) - before:
            total += tree_size(store / name, stop_at - total)
            if total > stop_at:
                break
        return total

    def account(self, scope: str, added: int, cap_bytes: int) -> None:
        """Count what a build added to its space's store, and drop the store (the space's
        build cache: the next build is cold) once the count passes `cap_bytes`. Counted,
        not measured: measuring would walk every cached layer after every build."""
        store = self.space_store(scope)
        tally = store.parent / f"{store.name}.bytes"
        with self._guard:
            try:
                total = int(tally.read_text()) + added
            except (OSError, ValueError):
                total = added
            tally.write_text(str(total))
        if total <= cap_bytes:
            return
        with self.space_lock(scope).exclusive(wait=False) as free:
            if free:
                shutil.rmtree(store, ignore_errors=True)
                tally.unlink(missing_ok=True)
