"""Unpacking uploaded source safely: nothing may land outside the build directory."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import BinaryIO

from cove.domain.errors import Invalid

MAX_FILES = 20_000
MAX_BYTES = 512 * 1024 * 1024


def extract(archive: BinaryIO, dest: Path, max_bytes: int = MAX_BYTES,
            max_files: int = MAX_FILES) -> int:
    """Extract a (gzipped) tarball into `dest`; return the number of files.

    Refused with a message naming the entry: absolute paths, `..`, links (symbolic or
    hard) that point outside, devices and fifos, names that are not UTF-8, and archives
    over the size or file-count limits. Checks run before anything is written.
    """
    try:
        tar = tarfile.open(fileobj=archive, mode="r:*")  # noqa: SIM115 - the with below closes it
    except (tarfile.TarError, OSError, EOFError) as err:
        raise Invalid(f"the upload is not a readable tar archive ({err})") from None
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as err:
            raise Invalid(f"the upload is a corrupt tar archive ({err})") from None
        if len(members) > max_files:
            raise Invalid(f"the upload has {len(members)} entries; the limit is {max_files}")
        total = sum(m.size for m in members if m.isfile())
        if total > max_bytes:
            raise Invalid(f"the upload unpacks to {total // 2**20} MiB; the limit is "
                          f"{max_bytes // 2**20} MiB")
        for member in members:
            _check_name(member.name)
            try:
                tarfile.data_filter(member, str(dest))
            except tarfile.FilterError as err:
                raise Invalid(f"refused archive entry {member.name!r}: {_why(err)}") from None
        tar.extractall(dest, filter="data")
    return sum(1 for m in members if m.isfile())


def _check_name(name: str) -> None:
    if name.startswith(("/", "\\")):
        # tarfile's data filter would quietly strip the slash; refuse it outright instead
        raise Invalid(f"refused archive entry {name!r}: absolute paths are not allowed")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(f"refused archive entry {name.encode('utf-8', 'replace')!r}: file names "
                      "must be UTF-8") from None


def _why(err: tarfile.FilterError) -> str:
    kind = type(err).__name__
    return {
        "AbsolutePathError": "absolute paths are not allowed",
        "OutsideDestinationError": "it would be written outside the source directory",
        "AbsoluteLinkError": "links may not point to absolute paths",
        "LinkOutsideDestinationError": "links may not point outside the source directory",
        "SpecialFileError": "devices, fifos and other special files are not allowed",
    }.get(kind, str(err))
