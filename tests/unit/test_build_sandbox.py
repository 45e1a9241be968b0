"""The build sandbox's bookkeeping on the host: what it hands over, names and drops."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cove.adapters.builder.sandbox import BUILD_UID, Sandbox, SharedLock
from cove.adapters.engine import Engine


def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(Engine(tmp_path / "engine"), tmp_path / "builds", "builder:1")


def test_the_context_is_handed_over_without_following_links(tmp_path: Path) -> None:
    """A tenant's context may hold a symlink to a host file: the link changes owner, the
    host file does not."""
    host_file = tmp_path / "host-only"
    host_file.write_text("secret")
    context = tmp_path / "src"
    (context / "sub").mkdir(parents=True)
    (context / "sub" / "app.py").write_text("")
    (context / "sub" / "app.py").chmod(0o600)
    (context / "link").symlink_to(host_file)
    Sandbox.hand_over(context)
    assert (context / "sub" / "app.py").stat().st_uid == BUILD_UID
    assert os.lstat(context / "link").st_uid == BUILD_UID
    assert host_file.stat().st_uid == 0


def test_a_space_cache_is_dropped_once_it_outgrows_its_cap(tmp_path: Path) -> None:
    box = sandbox(tmp_path)
    store = box.space_store("space-a")
    (store / "layer").write_text("cached")
    box.account("space-a", 6, cap_bytes=10)
    assert (store / "layer").exists()
    box.account("space-b", 20, cap_bytes=10)  # another space's count is its own
    assert (store / "layer").exists()
    box.account("space-a", 6, cap_bytes=10)
    assert not (store / "layer").exists()
    box.account("space-a", 6, cap_bytes=10)  # counting starts again
    assert box.space_store("space-a").is_dir()


def test_a_cache_in_use_is_not_dropped(tmp_path: Path) -> None:
    box = sandbox(tmp_path)
    store = box.space_store("busy")
    (store / "layer").write_text("cached")
    with box.space_lock("busy").shared():
        box.account("busy", 100, cap_bytes=10)
    assert (store / "layer").exists()


def test_stores_are_the_sandboxes_and_names_are_not_paths(tmp_path: Path) -> None:
    box = sandbox(tmp_path)
    store = box.space_store("../../etc")
    assert store.parent == tmp_path / "builds" / "spaces"
    assert store.stat().st_uid == BUILD_UID
    assert box.host_id("localhost/cove-test/nowhere:1") is None
    assert Sandbox.base_name("ab" * 32) == f"localhost/cove-base/{'ab' * 32}:id"


def test_an_import_waits_for_running_builds_and_builds_wait_for_it() -> None:
    lock = SharedLock()
    order: list[str] = []

    def import_bases() -> None:
        with lock.exclusive():
            order.append("import")

    with lock.shared():
        writer = threading.Thread(target=import_bases)
        writer.start()
        writer.join(0.2)
        order.append("build ended")
    writer.join(2)
    assert order == ["build ended", "import"]


def layout(root: Path, blobs: dict[str, bytes], manifest_digest: str | None = None) -> Path:
    """An OCI layout as a build leaves it: `blobs` by name, a manifest naming them all."""
    import hashlib
    import json

    (root / "blobs" / "sha256").mkdir(parents=True)
    names = list(blobs)
    for name, data in blobs.items():
        (root / "blobs" / "sha256" / name).write_bytes(data)
    manifest = json.dumps({"config": {"digest": f"sha256:{names[0]}"},
                           "layers": [{"digest": f"sha256:{n}"} for n in names[1:]]}).encode()
    digest = hashlib.sha256(manifest).hexdigest()
    (root / "blobs" / "sha256" / digest).write_bytes(manifest)
    (root / "index.json").write_text(json.dumps({"manifests": [{
        "digest": manifest_digest or f"sha256:{digest}", "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "built"}}]}))
    return root


def test_what_a_build_hands_over_is_taken_over_never_read_in_place(tmp_path: Path) -> None:
    """Another build of the space can swap files of the image while the host reads it: an
    escaped step could leave blobs as links (or fifos) to host files, for the host's copy
    to read as root, and name blobs by paths instead of digests."""
    import hashlib

    import pytest

    from cove.adapters.builder.handover import take_over
    from cove.domain.errors import BuildFailed

    config, layer = hashlib.sha256(b"{}").hexdigest(), "d" * 64
    good = layout(tmp_path / "good", {config: b"{}", layer: b"layer"})
    theirs = good / "blobs" / "sha256"
    for blob in theirs.iterdir():
        os.chown(blob, BUILD_UID, BUILD_UID)
        blob.chmod(0o644)
    taken = take_over(tmp_path, ("good",), ("good", "blobs"), tmp_path / "mine")
    held = taken / "blobs" / "sha256"
    assert (held / layer).read_bytes() == b"layer"
    # The manifest and config (read and checked) are Cove's own files; a layer is linked,
    # and checked against its digest when it is copied into the host's store.
    for small in set(os.listdir(held)) - {layer}:
        assert (held / small).stat().st_uid == 0 and (held / small).stat().st_mode & 0o222 == 0
        assert (held / small).stat().st_ino != (theirs / small).stat().st_ino
    # The build's files stay as the build left them: the space's next build writes
    # there again (an image of the same content has the same manifest).
    assert {(b.stat().st_uid, b.stat().st_mode & 0o777) for b in theirs.iterdir()} \
        == {(BUILD_UID, 0o644)}
    (theirs / layer).unlink()  # swapped after: what Cove holds stays
    assert (held / layer).read_bytes() == b"layer"

    def refused(name: str, **changes: object) -> str:
        root = tmp_path / name
        layout(root, {config: b"{}", layer: b"layer"}, **changes)  # type: ignore[arg-type]
        return name

    link = refused("link")
    (tmp_path / link / "blobs" / "sha256" / layer).unlink()
    (tmp_path / link / "blobs" / "sha256" / layer).symlink_to("/etc/hostname")
    fifo = refused("fifo")
    (tmp_path / fifo / "blobs" / "sha256" / layer).unlink()
    os.mkfifo(tmp_path / fifo / "blobs" / "sha256" / layer)
    swapped = refused("swapped")  # the blob directory itself a link elsewhere
    (tmp_path / swapped / "blobs").rename(tmp_path / "elsewhere")
    (tmp_path / swapped / "blobs").symlink_to(tmp_path / "elsewhere")
    path = refused("path", manifest_digest="sha256:../../../../etc/hostname")
    forged = refused("forged")  # a config that is not what its digest says
    (tmp_path / forged / "blobs" / "sha256" / config).write_bytes(b'{"User": "0"}')
    for name in (link, fifo, swapped, path, forged):
        with pytest.raises(BuildFailed, match="in its output: refused"):
            take_over(tmp_path, (name,), (name, "blobs"), tmp_path / f"mine-{name}")
