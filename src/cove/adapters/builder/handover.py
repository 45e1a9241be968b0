"""Taking over the image a build made, before the host reads any of it.

The sandbox writes the image (an OCI layout) into its space's store, beside the blobs of
earlier builds. Another build of the same space may be running there and may swap any of
those files for a link, a fifo or something else while the host reads. So the host never
reads them in place: it opens every directory without following links, reads the index
and the manifest bounded, checks that every blob it names is a digest, writes the
manifest and the config it checked against their digests as files of its own, and
hard-links each layer into a directory of its own, refusing anything but a regular file.
A file swapped later is no longer the one the host reads. A layer changed in place (the
link is the build's file: it stays the space's, for the next build to find) fails its
digest when it is copied into the host's store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from cove.domain.errors import BuildFailed

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAX_JSON = 4 << 20  # an index, a manifest or a config
REF = "org.opencontainers.image.ref.name"


def refused(why: str) -> BuildFailed:
    return BuildFailed(f"the build left {why} in its output: refused")


def open_dir(root: Path, *parts: str) -> int:
    """A descriptor of root/parts, no part of it a link."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for part in parts:
        try:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        except OSError:
            raise refused(f"no directory {part} (or a link)") from None
        finally:
            os.close(fd)
        fd = inner
    return fd


def read_json(name: str, dir_fd: int, digest: str | None = None) -> Any:
    """A small JSON file, not through a link (and, given its `digest`, that one)."""
    return parse_json(read_small(name, dir_fd, digest), name)


def parse_json(data: bytes, name: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise refused(f"{name} that is not JSON") from None


def read_small(name: str, dir_fd: int, digest: str | None = None) -> bytes:
    """A small file's bytes, not through a link (and, given its `digest`, that one)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        raise refused(f"no file {name} (or a link)") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_JSON:
            raise refused(f"{name} as something other than a small file")
        data = os.read(fd, MAX_JSON + 1)
    finally:
        os.close(fd)
    if digest is not None and hashlib.sha256(data).hexdigest() != digest:
        raise refused(f"a blob whose content is not its digest {digest[:12]}")
    return data


def digest_of(descriptor: Any) -> str:
    """The hex of a descriptor's digest (which names a file: nothing else may)."""
    digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise refused("a blob that is not named by its digest")
    return digest[7:]


def take_over(root: Path, layout: tuple[str, ...], blobs: tuple[str, ...],
              into: Path) -> Path:
    """The image tagged "built" in the layout at root/layout, its blobs in
    root/blobs/sha256, as an OCI layout of Cove's own at `into` (on the same filesystem),
    made as the module says. `root` is Cove's; what is under it may be the sandbox's."""
    index_fd = open_dir(root, *layout)
    blob_fd = open_dir(root, *blobs, "sha256")
    target = into / "blobs" / "sha256"
    target.mkdir(parents=True)
    target_fd = open_dir(target)
    try:
        index = read_json("index.json", index_fd)
        built = [m for m in (index.get("manifests") or [] if isinstance(index, dict) else [])
                 if isinstance(m, dict) and (m.get("annotations") or {}).get(REF) == "built"]
        if len(built) != 1:
            raise refused("no single image tagged built")

        def link(digest: str) -> None:
            try:
                os.link(digest, digest, src_dir_fd=blob_fd, dst_dir_fd=target_fd,
                        follow_symlinks=False)
            except FileExistsError:
                return
            except OSError:
                raise refused(f"no blob {digest[:12]}") from None
            if not stat.S_ISREG(os.stat(digest, dir_fd=target_fd,
                                        follow_symlinks=False).st_mode):
                raise refused("links or special files")

        def copy(digest: str) -> Any:
            """A small blob checked against its digest, written as a file of Cove's."""
            data = read_small(digest, blob_fd, digest)
            try:
                fd = os.open(digest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o444, dir_fd=target_fd)
            except FileExistsError:  # named twice: written (and checked) already
                fd = -1
            if fd >= 0:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            return parse_json(data, "a manifest or config")

        manifest = copy(digest_of(built[0]))
        layers = manifest.get("layers") if isinstance(manifest, dict) else None
        if not isinstance(layers, list):
            raise refused("a manifest without layers")
        config = digest_of(manifest.get("config"))
        copy(config)
        for digest in [digest_of(d) for d in layers]:
            if digest != config:
                link(digest)
    finally:
        for fd in (index_fd, blob_fd, target_fd):
            os.close(fd)
    (into / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (into / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {k: built[0][k] for k in ("mediaType", "digest", "size") if k in built[0]}
        | {"annotations": {REF: "built"}}]}))
    return into
