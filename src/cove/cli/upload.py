"""Packing a directory for `cove push`: a gzipped tarball that honours ignore files."""

from __future__ import annotations

import fnmatch
import tarfile
from pathlib import Path
from typing import BinaryIO

ALWAYS_IGNORED = (".git", ".hg", ".svn")
IGNORE_FILES = (".coveignore", ".gitignore")


def ignore_patterns(root: Path) -> list[str]:
    patterns: list[str] = []
    for name in IGNORE_FILES:
        path = root / name
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                line = line.strip()
                if line and not line.startswith(("#", "!")):
                    patterns.append(line)
    return patterns


def ignored(relative: str, is_dir: bool, patterns: list[str]) -> bool:
    parts = relative.split("/")
    if any(p in ALWAYS_IGNORED for p in parts):
        return True
    for pattern in patterns:
        dir_only = pattern.endswith("/")
        pat = pattern.strip("/")
        if dir_only and not is_dir:
            continue
        anchored = pattern.startswith("/") or "/" in pat
        if anchored and fnmatch.fnmatch(relative, pat):
            return True
        if not anchored and fnmatch.fnmatch(parts[-1], pat):
            return True
    return False


def pack(root: Path, out: BinaryIO) -> int:
    """Write the directory to `out` as a .tar.gz, without ignored files (symlinks are kept
    as links), file by file in chunks: memory stays flat whatever the tree's size. Returns
    the bytes written."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    patterns = ignore_patterns(root)
    start = out.tell()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root).as_posix()
            if any(ignored("/".join(relative.split("/")[:i]), True, patterns)
                   for i in range(1, relative.count("/") + 1)):
                continue  # inside an ignored directory
            if ignored(relative, path.is_dir() and not path.is_symlink(), patterns):
                continue
            tar.add(path, arcname=relative, recursive=False)
    return out.tell() - start
