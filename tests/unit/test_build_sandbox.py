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


def test_an_output_with_links_leading_out_is_refused(tmp_path: Path) -> None:
    """An escaped step could leave the image's blobs as links to host files, for the
    host's copy to read as root."""
    import pytest

    from cove.domain.errors import BuildFailed

    layout = tmp_path / "work" / "out" / "image"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (blobs / ("0" * 64)).symlink_to("/etc/hostname")
    with pytest.raises(BuildFailed, match="left links in its output"):
        sandbox(tmp_path).import_image(layout, "localhost/cove-test/never:1")
    # The same in the space's blob directory, where a build's layers go, and as that
    # directory itself.
    (blobs / ("0" * 64)).unlink()
    shared = tmp_path / "space" / "cove-blobs"
    (shared / "sha256").mkdir(parents=True)
    (shared / "sha256" / ("1" * 64)).symlink_to("/etc/hostname")
    with pytest.raises(BuildFailed, match="left links in its output"):
        sandbox(tmp_path).import_image(layout, "localhost/cove-test/never:1", blobs=shared)
    (tmp_path / "elsewhere").symlink_to(shared)
    with pytest.raises(BuildFailed, match="left links in its output"):
        sandbox(tmp_path).import_image(layout, "localhost/cove-test/never:1",
                                       blobs=tmp_path / "elsewhere")
