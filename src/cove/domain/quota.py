"""Quota arithmetic: what a space uses and whether a change fits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cove.domain.errors import QuotaExceeded
from cove.domain.models import Process
from cove.domain.template import Quota, SpaceTemplate


@dataclass(frozen=True)
class Usage:
    apps: int = 0
    instances: int = 0
    memory_mb: int = 0
    cpu_millis: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.apps + other.apps, self.instances + other.instances,
                     self.memory_mb + other.memory_mb, self.cpu_millis + other.cpu_millis)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.apps - other.apps, self.instances - other.instances,
                     self.memory_mb - other.memory_mb, self.cpu_millis - other.cpu_millis)

    def as_dict(self) -> dict[str, int]:
        return {"apps": self.apps, "instances": self.instances, "memory_mb": self.memory_mb,
                "cpu_millis": self.cpu_millis}


def formation_usage(template: SpaceTemplate, formation: dict[str, Process]) -> Usage:
    usage = Usage(apps=1)
    for proc in formation.values():
        size = template.sizes[proc.size]
        # An autoscaled process may grow to its maximum: the quota must hold that.
        count = proc.autoscale.max if proc.autoscale else proc.count
        usage = usage + Usage(0, count, count * size.memory_mb, count * size.cpu_millis)
    return usage


def space_usage(template: SpaceTemplate, formations: Iterable[dict[str, Process]]) -> Usage:
    total = Usage()
    for formation in formations:
        total = total + formation_usage(template, formation)
    return total


def check_fits(quota: Quota, usage: Usage, what: str) -> None:
    """Raise QuotaExceeded naming the first limit `usage` goes over."""
    for key, used, limit, unit in (
        ("apps", usage.apps, quota.apps, ""),
        ("instances", usage.instances, quota.instances, ""),
        ("memory", usage.memory_mb, quota.memory_mb, " MB"),
        ("cpu", usage.cpu_millis, quota.cpu_millis, " millicores"),
    ):
        if used > limit:
            raise QuotaExceeded(
                f"{what} would use {used}{unit} of {key} but the space's quota is {limit}{unit}: "
                "scale something down, destroy an app, or ask the platform admin for more"
            )
