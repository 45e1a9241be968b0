"""What long operations (builds, stack builds) stream to their clients: lines of output,
then one result, each a JSON object on a line of its own (application/x-ndjson). Clients
(the CLI, the git hook) print the output and act on the result; nobody parses prose."""

from __future__ import annotations

import json
from dataclasses import dataclass

MEDIA_TYPE = "application/x-ndjson"
SUCCEEDED, FAILED = "succeeded", "failed"


@dataclass(frozen=True)
class Output:
    text: str


@dataclass(frozen=True)
class Result:
    status: str  # SUCCEEDED or FAILED
    message: str  # one line for people: what happened, or what to do
    build: int | None = None
    release: int | None = None  # the version a successful build released

    @property
    def ok(self) -> bool:
        return self.status == SUCCEEDED


Event = Output | Result


def encode(event: Event) -> str:
    if isinstance(event, Output):
        return json.dumps({"type": "output", "text": event.text})
    return json.dumps({"type": "result", "status": event.status, "message": event.message,
                       "build": event.build, "release": event.release})


def decode(line: str) -> Event:
    """One line of a stream; a line that is not an event is shown as output."""
    try:
        data = json.loads(line)
    except ValueError:
        return Output(line)
    if not isinstance(data, dict):
        return Output(line)
    if data.get("type") == "result" and data.get("status") in (SUCCEEDED, FAILED):
        return Result(data["status"], str(data.get("message", "")), data.get("build"),
                      data.get("release"))
    return Output(str(data.get("text", "")))
