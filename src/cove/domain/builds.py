"""Builds: source turned into an image, numbered per app."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cove.domain.models import now

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


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
