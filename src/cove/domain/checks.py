"""The result of one readiness check, for the host (`cove-server doctor`) and for a space or
an app (`cove doctor`): a status, what was seen, why it matters and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass

PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass(frozen=True)
class Check:
    group: str  # what the check is about: install, host, platform, app, ...
    name: str
    status: str  # PASS, WARN or FAIL
    detail: str  # what was seen
    why: str = ""  # why it matters
    fix: str = ""  # what to do when it does not pass

    def line(self) -> str:
        """One line for a terminal: status, group, name, what was seen, and the fix."""
        text = f"{'FAIL' if self.status == FAIL else self.status:<4}  {self.group:<8}  " \
               f"{self.name} — {self.detail}"
        return f"{text} (fix: {self.fix})" if self.fix and self.status != PASS else text


def worst(checks: list[Check]) -> str:
    statuses = {c.status for c in checks}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else PASS
