"""Procfiles and uploaded tarballs: malformed and hostile input gets a clear error."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from cove.adapters.builder.archive import extract
from cove.cli.upload import pack
from cove.domain.errors import Invalid
from cove.domain.procfile import MAX_PROCESS_TYPES, parse_procfile


def test_procfiles() -> None:
    parsed = parse_procfile("# processes\nweb: ./server --port $PORT\n\nworker: ./work\n")
    assert parsed == {"web": ["/bin/sh", "-c", "./server --port $PORT"],
                      "worker": ["/bin/sh", "-c", "./work"]}
    for bad, why in [("web ./server", "expected `type: command`"),
                     ("Web: x", "lowercase"), ("web: x\nweb: y", "declared twice"),
                     ("web:", "no command"), ("web: 'unclosed", "cannot parse"),
                     ("", "no process types")]:
        with pytest.raises(Invalid, match=why):
            parse_procfile(bad)
    # Each type is a Deployment in the space: its cluster quota counts them.
    types = "".join(f"p{n}: x\n" for n in range(MAX_PROCESS_TYPES))
    assert len(parse_procfile(types + "release: migrate\n")) == MAX_PROCESS_TYPES + 1
    with pytest.raises(Invalid, match=f"at most {MAX_PROCESS_TYPES}"):
        parse_procfile(types + "one-more: x\n")


def tarball(*members: tuple[tarfile.TarInfo, bytes | None]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buffer.seek(0)
    return buffer


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_a_normal_tarball_unpacks(tmp_path: Path) -> None:
    dest = tmp_path / "src"
    dest.mkdir()
    archive = tarball((entry("app/main.go"), b"package main"),
                      (entry("app/link", tarfile.SYMTYPE, "main.go"), None))
    assert extract(archive, dest) == 1
    assert (dest / "app" / "main.go").read_bytes() == b"package main"


@pytest.mark.parametrize("member, why", [
    ((entry("../escape"), b"x"), "outside"),
    ((entry("/etc/evil"), b"x"), "absolute"),
    ((entry("link", tarfile.SYMTYPE, "/etc/passwd"), None), "absolute"),
    ((entry("link", tarfile.SYMTYPE, "../../outside"), None), "outside"),
    ((entry("hard", tarfile.LNKTYPE, "../../etc/passwd"), None), "outside"),
    ((entry("dev", tarfile.CHRTYPE), None), "special files"),
    ((entry("fifo", tarfile.FIFOTYPE), None), "special files"),
])
def test_hostile_entries_are_refused_before_anything_is_written(
        tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], why: str) -> None:
    dest = tmp_path / "src"
    dest.mkdir()
    archive = tarball((entry("fine.txt"), b"ok"), member)
    with pytest.raises(Invalid, match=why):
        extract(archive, dest)
    assert list(dest.iterdir()) == []  # not even the harmless entry
    assert not (tmp_path / "escape").exists()


def test_non_utf8_names_oversized_and_corrupt_uploads(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT,
                      encoding="latin-1") as tar:
        info = tarfile.TarInfo("caf\xe9.txt")
        tar.addfile(info, io.BytesIO(b""))
    raw.seek(0)
    with pytest.raises(Invalid, match="UTF-8"):
        extract(raw, tmp_path)
    with pytest.raises(Invalid, match="limit is 0 MiB"):
        extract(tarball((entry("big"), b"x" * 2_000_000)), tmp_path, max_bytes=1000)
    with pytest.raises(Invalid, match="entries"):
        extract(tarball((entry("a"), b""), (entry("b"), b"")), tmp_path, max_files=1)
    with pytest.raises(Invalid, match="not a readable tar"):
        extract(io.BytesIO(b"definitely not a tarball"), tmp_path)


def test_push_packs_what_is_not_ignored(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".coveignore").write_text("*.log\nnode_modules/\n/secret.txt\n")
    (tmp_path / "app.log").write_text("noise")
    (tmp_path / "secret.txt").write_text("no")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "dep.js").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.go").write_text("package main")
    packed = io.BytesIO()
    assert pack(tmp_path, packed) == len(packed.getvalue())
    packed.seek(0)
    with tarfile.open(fileobj=packed, mode="r:gz") as tar:
        names = sorted(tar.getnames())
    assert names == [".coveignore", "Dockerfile", "src", "src/main.go"]


def test_push_packs_a_large_tree_in_flat_memory(tmp_path: Path) -> None:
    """`cove push` packed the whole upload in memory (356 MB for a 300 MB tree)."""
    import tempfile
    import tracemalloc

    tree = tmp_path / "tree"
    tree.mkdir()
    with (tree / "data.bin").open("wb") as data:
        for _ in range(48):
            data.write(os.urandom(2**20))  # incompressible: the pack is as large
    tracemalloc.start()
    try:
        with tempfile.TemporaryFile() as out:
            size = pack(tree, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 48 * 2**20 and peak < 4 * 2**20, peak
