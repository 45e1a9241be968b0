"""Builds: source turned into an image, numbered per app."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cove.domain.models import now

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
MAX_UPLOAD = 256 * 2**20  # bytes of a compressed source upload (`cove push`, git push)


def build_repository(space: str, app: str) -> str:
    """Where an app's built images are tagged (build-N) in the local image store."""
    return f"localhost/cove-builds/{space}/{app}"


@dataclass
class Build:
    id: int
    app_id: int
    number: int
    status: str
    created_by: str
    builder: str = ""
    image: str = ""
    release_version: int | None = None
    error: str = ""
    log: str = ""
    created_at: dt.datetime = field(default_factory=now)
    finished_at: dt.datetime | None = None
