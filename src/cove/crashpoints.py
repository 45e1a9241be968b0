"""Named steps where the server can be made to die, as `kill -9` would kill it.

`COVE_CRASH_AT=<step>` in the server's environment kills it (SIGKILL: nothing is cleaned
up) when it reaches that step; the chaos tests use it to stop the broker between exactly
the two actions they mean to split. Unset, as in production, a step costs a lookup.
"""

from __future__ import annotations

import os
import signal

STEPS = (
    "release.starting",  # quota reserved and logged, the pool not yet called
    "local.started",  # the new instances run, none is known healthy yet
    "local.routed",  # the route names the new instances; the old still run
    "release.rolled-out",  # the pool is done; the release is not recorded yet
    "release.recorded",  # recorded and committed; "is live" not yet logged
)


def crash_point(step: str) -> None:
    if os.environ.get("COVE_CRASH_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)
