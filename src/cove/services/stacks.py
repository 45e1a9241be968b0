"""Stacks: every user may see which build and run images builds use; only a platform
admin (re)makes them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from cove.domain.errors import Conflict, Forbidden
from cove.domain.events import FAILED, SUCCEEDED, Event, Result
from cove.domain.models import User
from cove.ports.builder import StackImage
from cove.services.context import Context
from cove.services.streams import Emit, in_background

log = logging.getLogger(__name__)
_BUILDING = threading.Lock()


def list_stacks(ctx: Context, user: User) -> list[StackImage]:
    return ctx.require_builder().stacks()


def build_stacks(ctx: Context, user: User) -> Iterator[Event]:
    """Start making the stack images; the output streams back, then the result. Builds
    already running keep the images they started with."""
    builder = ctx.require_builder()
    if not user.is_admin:
        raise Forbidden("only a platform admin builds stacks")
    if not _BUILDING.acquire(blocking=False):
        raise Conflict("a stack build is already running: wait for it to finish")

    def work(emit: Emit) -> Result:
        try:
            log.info("stack build started by %s", user.name)
            builder.build_stacks(emit)
            emit("==> stacks built")
            return Result(SUCCEEDED, "stacks built")
        except Exception as err:  # the operator needs to see why (mirror down, disk full)
            log.exception("stack build failed")
            emit(f"==> stack build failed: {err}")
            return Result(FAILED, f"stack build failed: {err}")
        finally:
            _BUILDING.release()

    return in_background(work)
