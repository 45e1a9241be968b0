"""Procfile parsing: `type: command` lines declaring an app's process types."""

from __future__ import annotations

import re
import shlex

from cove.domain.errors import Invalid

_LINE = re.compile(r"^([A-Za-z0-9_-]+)\s*:\s*(.*)$")
_TYPE = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
RELEASE = "release"  # runs once before a new release takes traffic, not a process type
MAX_BYTES = 64 * 1024
# Each process type is an object (a Deployment, with its history) in the app's space: the
# space's object counts on a cluster are sized by it.
MAX_PROCESS_TYPES = 10


def process_types(processes: dict[str, list[str] | None]) -> set[str]:
    """The scalable process types of a release (its release command is not one)."""
    return set(processes) - {RELEASE}


def parse_procfile(text: str) -> dict[str, list[str]]:
    """Return process type -> argv. Blank lines and `#` comments are ignored."""
    if len(text.encode()) > MAX_BYTES:
        raise Invalid(f"Procfile is larger than {MAX_BYTES // 1024} KiB")
    result: dict[str, list[str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise Invalid(f"Procfile line {number}: expected `type: command`, got {raw!r}")
        kind, command = match[1], match[2].strip()
        if not _TYPE.match(kind):
            raise Invalid(f"Procfile line {number}: process type {kind!r} must be lowercase "
                          "letters, digits and hyphens, starting with a letter")
        if kind in result:
            raise Invalid(f"Procfile line {number}: process type {kind!r} is declared twice")
        try:
            argv = shlex.split(command)
        except ValueError as err:
            raise Invalid(f"Procfile line {number}: cannot parse the command ({err})") from None
        if not argv:
            raise Invalid(f"Procfile line {number}: process type {kind!r} has no command")
        # Through a shell, as Heroku does, so `$PORT` and `&&` work as users expect.
        result[kind] = ["/bin/sh", "-c", command]
    if not result:
        raise Invalid("Procfile declares no process types")
    types = len(set(result) - {RELEASE})
    if types > MAX_PROCESS_TYPES:
        raise Invalid(f"Procfile declares {types} process types; an app has at most "
                      f"{MAX_PROCESS_TYPES}")
    return result
