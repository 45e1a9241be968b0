"""How the dependency cache knows a file is the one its registry published.

Pure functions, no I/O. A file is stored only once it matches a hash the cache learnt
from the registry itself, never from a build:
- PyPI serves files under their own BLAKE2b-256 digest (`packages/ab/cd/<rest>/name`);
- npm publishes each tarball's SRI integrity (sha512) in the package's metadata;
- the Go checksum database names every module version's `h1:` hashes (of its zip and of
  its go.mod).
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

PYPI_FILE = re.compile(r"packages/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{60})/[^/]+")


class Mismatch(Exception):
    """What came from upstream is not what the registry says it published."""


def pypi_digest(path: str) -> str | None:
    """The BLAKE2b-256 digest a PyPI file path names, or None for any other path (such a
    file is passed through, never stored)."""
    found = PYPI_FILE.fullmatch(path)
    return "".join(found.groups()) if found else None


def check_pypi(path: str, data_digest: str) -> None:
    expected = pypi_digest(path)
    if expected is None or expected != data_digest:
        raise Mismatch(f"{path}: content digest {data_digest[:16]}... is not the one its "
                       "path names")


def check_npm(integrity: str, shasum: str, digests: dict[str, bytes]) -> None:
    """An npm tarball against what its metadata publishes: the strongest SRI `integrity`
    given (one or more `algo-base64`), or for old packages only a sha1 `shasum`.
    `digests`: the tarball's, by algorithm."""
    by_algo: dict[str, list[str]] = {}
    for item in integrity.split():
        algo, _, value = item.partition("-")
        by_algo.setdefault(algo, []).append(value)
    for algo in ("sha512", "sha256"):
        if algo in by_algo:
            if base64.b64encode(digests[algo]).decode() in by_algo[algo]:
                return
            raise Mismatch(f"{algo} of the tarball is not the published integrity")
    sha1 = [base64.b64decode(v).hex() for v in by_algo.get("sha1", [])] + \
        ([shasum.lower()] if shasum else [])
    if not sha1:
        raise Mismatch("the registry publishes no hash for it")
    if digests["sha1"].hex() not in sha1:
        raise Mismatch("sha1 of the tarball is not the published one")


def go_hash(files: Iterable[tuple[str, str]]) -> str:
    """The Go checksum database's `h1:` hash of named files, given each file's SHA-256
    hex (golang.org/x/mod dirhash Hash1): SHA-256 over the sorted lines
    "<sha256 hex>  <name>\\n"."""
    summary = hashlib.sha256()
    for name, digest in sorted(files):
        if "\n" in name:
            raise Mismatch(f"a file name with a newline: {name!r}")
        summary.update(f"{digest}  {name}\n".encode())
    return "h1:" + base64.b64encode(summary.digest()).decode()


GO_ZIP_LIMIT = 500 << 20  # what Go itself accepts of a module, unpacked


def go_zip_hash(path: Path) -> str:
    """The `h1:` hash of a module zip, read entry by entry (bounded as Go bounds it)."""
    digests, total = [], 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                digest = hashlib.sha256()
                with archive.open(info) as entry:
                    while chunk := entry.read(1 << 16):
                        total += len(chunk)
                        if total > GO_ZIP_LIMIT:
                            raise Mismatch("the module unpacks to more than Go accepts")
                        digest.update(chunk)
                digests.append((info.filename, digest.hexdigest()))
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise Mismatch(f"not a module zip: {err}") from None
    return go_hash(digests)


def go_mod_hash(path: Path) -> str:
    return go_hash([("go.mod", hashlib.sha256(path.read_bytes()).hexdigest())])


def sumdb_hashes(lookup: str, module: str, version: str) -> tuple[str, str]:
    """(zip hash, go.mod hash) of `module`@`version` from a checksum database lookup."""
    zip_hash = mod_hash = ""
    for line in lookup.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == module:
            if parts[1] == version:
                zip_hash = parts[2]
            elif parts[1] == f"{version}/go.mod":
                mod_hash = parts[2]
    if not mod_hash:
        raise Mismatch(f"the checksum database does not know {module}@{version}")
    return zip_hash, mod_hash


def go_unescape(path: str) -> str:
    """A module path as the proxy protocol escapes it ("!a" for "A") back to itself."""
    return re.sub(r"!([a-z])", lambda m: m.group(1).upper(), path)
