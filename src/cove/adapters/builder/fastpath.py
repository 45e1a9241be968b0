"""Code-only changes without running a build: the previous image with a new source layer.

A buildpack's image ends with `COPY . /app`; every step before it reads from the source
only the files it names (requirements.txt, package.json, ...). When the Dockerfile (which
carries the app's build scope and its base images' ids) and those files are the same as
for the app's last build, every layer but the last is what buildah's cache would give
again. So Cove writes the last layer itself, from the source, as that COPY makes it, and
stores the image: no sandbox, no step, nothing of the tenant's runs. Any doubt (another
Dockerfile shape, an ignore file, a file of a kind the layer cannot hold, a layer no
longer in the store) means the ordinary build.

The layer is plain data read with lstat: links are stored as links, never followed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shlex
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cove.adapters.builder.handover import digest_of

# The last step that writes files, and the steps that may follow it (metadata only).
FINAL_COPY = re.compile(r"COPY(?: --chown=(\d+)(?::(\d+))?)? \. /app/?")
METADATA = frozenset({"ENV", "USER", "CMD", "ENTRYPOINT", "LABEL", "EXPOSE", "STOPSIGNAL"})
IGNORE_FILES = (".dockerignore", ".containerignore")
ESCAPE = re.compile(r"^\s*#\s*escape\s*=", re.MULTILINE | re.IGNORECASE)
LAYER = "application/vnd.oci.image.layer.v1.tar"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
REF = "built"  # the reference in the layout (as the sandbox's push names it)


class NotEligible(Exception):
    """This build must run: the reason is in the message."""


@dataclass(frozen=True)
class Plan:
    key: str  # the Dockerfile and every file the steps before the final COPY read
    uid: int  # the owner the final COPY gives the files
    gid: int


def plan(dockerfile: str, context: Path) -> Plan:
    """Whether a code-only change of this source can skip the build, and under what key.
    Read line by line: anything that reading cannot be sure of (continued lines, another
    escape character, heredocs, a step it cannot parse) means a build."""
    for name in IGNORE_FILES:
        if os.path.lexists(context / name):
            raise NotEligible(f"{name} decides what is copied")
    if ESCAPE.search(dockerfile) or "<<" in dockerfile:
        raise NotEligible("another escape character, or a heredoc")
    lines = [line.strip() for line in dockerfile.splitlines()
             if line.strip() and not line.strip().startswith("#")]
    if any(line.endswith("\\") for line in lines):
        raise NotEligible("continued lines")
    final = max((i for i, line in enumerate(lines) if line.upper().startswith("FROM ")),
                default=-1)
    writes = [i for i, line in enumerate(lines)
              if i > final and line.split()[0].upper() not in METADATA]
    copy = FINAL_COPY.fullmatch(lines[writes[-1]]) if writes else None
    if copy is None:
        raise NotEligible("the image does not end with `COPY . /app`")
    digest = hashlib.sha256(dockerfile.encode())
    for line in lines[:writes[-1]]:
        for source in _sources(line):
            digest.update(b"\0" + source.encode() + b"\0" + _file_digest(context, source))
    uid = int(copy.group(1) or 0)
    return Plan(digest.hexdigest(), uid, int(copy.group(2) or uid))


def _sources(line: str) -> list[str]:
    """What a step reads from the source (nothing for steps other than COPY, and for a
    COPY from another stage: that stage's own steps account for it)."""
    word = line.split()[0].upper()
    if word not in ("COPY", "ADD"):
        return []
    if word == "ADD" or line[4:].lstrip().startswith("["):
        raise NotEligible(f"a step reads the source: {line}")
    try:
        words = shlex.split(line)[1:]
    except ValueError:
        raise NotEligible(f"cannot read {line}") from None
    if any(w.startswith("--from=") for w in words):
        return []
    paths = [w for w in words if not w.startswith("--")]
    if len(paths) < 2:
        raise NotEligible(f"cannot read {line}")
    return paths[:-1]


def _file_digest(context: Path, name: str) -> bytes:
    if any(c in name for c in "*?[") or name.startswith("/") or ".." in Path(name).parts:
        raise NotEligible(f"a step copies {name}")
    path = context / name
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise NotEligible(f"a step copies {name}, which is missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise NotEligible(f"a step copies {name}, which is not a plain file")
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


class _Hashing:
    """A file that hashes what is written to it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)


def write_layer(context: Path, dest: Path, uid: int, gid: int) -> tuple[str, int]:
    """The tar layer of `COPY . /app` (owner uid:gid): its digest and size."""
    def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
        return info

    with open(dest, "wb") as handle:
        out = _Hashing(handle)
        with tarfile.open(fileobj=out, mode="w|",  # type: ignore[call-overload]
                          format=tarfile.PAX_FORMAT) as tar:
            top = tarfile.TarInfo("app")
            top.type, top.mode = tarfile.DIRTYPE, 0o755
            top.mtime = int(dt.datetime.now().timestamp())
            tar.addfile(owned(top))
            for root, dirs, files in os.walk(context):
                dirs.sort()
                for name in sorted(dirs) + sorted(files):
                    path = os.path.join(root, name)
                    mode = os.lstat(path).st_mode
                    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                        raise NotEligible(f"{os.path.relpath(path, context)} is a special file")
                    arcname = "app/" + os.path.relpath(path, context)
                    tar.add(path, arcname, recursive=False, filter=owned)
    return f"sha256:{out.digest.hexdigest()}", out.size


def write_image(layout: Path, previous: dict[str, Any], layer: Path, digest: str,
                size: int) -> str:
    """An OCI layout of the previous image (`manifest` and `config`) with its last layer
    replaced by `layer`; the image's id (its config's digest). Only the new blobs are
    written: the store has the others."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer.rename(blobs / digest.removeprefix("sha256:"))
    config = json.loads(json.dumps(previous["config"]))
    manifest = json.loads(json.dumps(previous["manifest"]))
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    config["rootfs"]["diff_ids"][-1] = digest
    config["created"] = now
    last = [h for h in config.get("history", []) if not h.get("empty_layer")]
    if last:
        last[-1]["created"] = now
        last[-1]["created_by"] = f"/bin/sh -c #(nop) COPY dir:{digest[7:]} in /app "
    manifest["layers"][-1] = {"mediaType": LAYER, "digest": digest, "size": size}
    manifest["config"] = _blob(blobs, CONFIG, config)
    described = _blob(blobs, MANIFEST, manifest)
    described["annotations"] = {"org.opencontainers.image.ref.name": REF}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                   "manifests": [described]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return str(manifest["config"]["digest"]).removeprefix("sha256:")


def _blob(blobs: Path, media_type: str, content: dict[str, Any]) -> dict[str, Any]:
    data = json.dumps(content, separators=(",", ":")).encode()
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def read_image(layout: Path) -> dict[str, Any]:
    """The manifest and config of an image in a layout of Cove's (taken over from a build:
    its blobs named by their digests only)."""
    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((blobs / digest_of(index["manifests"][0])).read_text())
    config = json.loads((blobs / digest_of(manifest["config"])).read_text())
    return {"manifest": manifest, "config": config}


def ends_with_source(image: dict[str, Any]) -> bool:
    """Whether the image's last layer is the one `COPY . /app` made."""
    layers = [h for h in image["config"].get("history", []) if not h.get("empty_layer")]
    made_by = layers[-1].get("created_by", "").rstrip() if layers else ""
    return made_by.startswith("/bin/sh -c #(nop) COPY dir:") and made_by.endswith(" in /app") \
        and len(image["manifest"]["layers"]) == len(image["config"]["rootfs"]["diff_ids"])
