"""The space template: what every new space gets. Parsed from plain data (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cove.domain.contract import RUN_AS_UID
from cove.domain.errors import Invalid
from cove.domain.sizes import Size


@dataclass(frozen=True)
class Quota:
    apps: int
    instances: int
    memory_mb: int
    cpu_millis: int
    builds: int

    def as_dict(self) -> dict[str, int]:
        return {"apps": self.apps, "instances": self.instances, "memory_mb": self.memory_mb,
                "cpu_millis": self.cpu_millis, "builds": self.builds}


@dataclass(frozen=True)
class NetworkPolicy:
    """Deny by default; the booleans open what the template allows."""

    allow_same_space: bool = True
    allow_from_router: bool = True
    allow_dns: bool = True

    def as_dict(self) -> dict[str, str | bool]:
        return {"default": "deny", "allow_same_space": self.allow_same_space,
                "allow_from_router": self.allow_from_router, "allow_dns": self.allow_dns}


@dataclass(frozen=True)
class SecurityProfile:
    """Equal to Kubernetes Pod Security "restricted"; the template cannot weaken it."""

    name: str = "restricted"
    run_as_uid: int = RUN_AS_UID
    tmp_size_mb: int = 64


@dataclass(frozen=True)
class BuildLimits:
    """What one build in the space may use before it is stopped."""

    memory_mb: int = 1024
    cpu_millis: int = 1000
    pids: int = 512
    timeout_seconds: int = 600
    max_output_bytes: int = 4 * 1024 * 1024
    disk_mb: int = 2048  # what one step may write to its filesystem

    def as_dict(self) -> dict[str, int]:
        return {"memory_mb": self.memory_mb, "cpu_millis": self.cpu_millis, "pids": self.pids,
                "timeout_seconds": self.timeout_seconds,
                "output_kb": self.max_output_bytes // 1024, "disk_mb": self.disk_mb}


@dataclass(frozen=True)
class SpaceTemplate:
    quota: Quota
    sizes: dict[str, Size]
    default_size: str
    max_size: str
    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    security: SecurityProfile = field(default_factory=SecurityProfile)
    pool: str = "local"
    builds: BuildLimits = field(default_factory=BuildLimits)

    def size(self, name: str | None) -> Size:
        chosen = name or self.default_size
        if chosen not in self.sizes:
            raise Invalid(f"unknown size {chosen!r}: choose one of {', '.join(self.sizes)}")
        size = self.sizes[chosen]
        biggest = self.sizes[self.max_size]
        if size.memory_mb > biggest.memory_mb or size.cpu_millis > biggest.cpu_millis:
            raise Invalid(f"size {chosen!r} is above this space's maximum {self.max_size!r}")
        return size


def _int(data: dict[str, Any], key: str, where: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Invalid(f"space template: {where}.{key} must be a non-negative integer")
    return value


def parse_template(data: Any) -> SpaceTemplate:
    """Build a SpaceTemplate from the operator's YAML (already loaded), with clear errors."""
    if not isinstance(data, dict):
        raise Invalid("space template: expected a mapping at the top level")
    q = data.get("quota")
    if not isinstance(q, dict):
        raise Invalid("space template: 'quota' mapping is required")
    quota = Quota(**{k: _int(q, k, "quota") for k in ("apps", "instances", "memory_mb",
                                                     "cpu_millis", "builds")})
    raw_sizes = data.get("sizes")
    if not isinstance(raw_sizes, dict) or not raw_sizes:
        raise Invalid("space template: 'sizes' must map size names to memory_mb and cpu_millis")
    sizes = {}
    for name, spec in raw_sizes.items():
        if not isinstance(spec, dict):
            raise Invalid(f"space template: size {name!r} must be a mapping")
        sizes[str(name)] = Size(str(name), _int(spec, "memory_mb", f"sizes.{name}"),
                                _int(spec, "cpu_millis", f"sizes.{name}"),
                                int(spec.get("pids", 256)))
    limits = data.get("limits", {})
    default_size = str(limits.get("default_size", next(iter(sizes))))
    max_size = str(limits.get("max_size", default_size))
    for label, value in (("default_size", default_size), ("max_size", max_size)):
        if value not in sizes:
            raise Invalid(f"space template: limits.{label} {value!r} is not a defined size")
    net = data.get("network", {}) or {}
    if net.get("default", "deny") != "deny":
        raise Invalid("space template: network.default must be 'deny'")
    network = NetworkPolicy(bool(net.get("allow_same_space", True)),
                            bool(net.get("allow_from_router", True)),
                            bool(net.get("allow_dns", True)))
    sec = data.get("security", {}) or {}
    if sec.get("profile", "restricted") != "restricted":
        raise Invalid("space template: security.profile must be 'restricted'")
    uid = int(sec.get("run_as_uid", RUN_AS_UID))
    if uid <= 0:
        raise Invalid("space template: security.run_as_uid must be a non-root uid")
    security = SecurityProfile("restricted", uid, int(sec.get("tmp_size_mb", 64)))
    return SpaceTemplate(quota, sizes, default_size, max_size, network, security,
                         str(data.get("pool", "local")), _build_limits(data.get("builds")))


def _build_limits(data: Any) -> BuildLimits:
    if data is None:  # spaces made before templates had build limits
        return BuildLimits()
    if not isinstance(data, dict):
        raise Invalid("space template: 'builds' must be a mapping of build limits")
    given = {k: _int(data, k, "builds") for k in ("memory_mb", "cpu_millis", "pids",
                                                  "timeout_seconds", "output_kb", "disk_mb")
             if k in data}
    if any(v == 0 for v in given.values()):
        raise Invalid("space template: builds: every build limit must be above zero")
    if "output_kb" in given:
        given["max_output_bytes"] = given.pop("output_kb") * 1024
    return BuildLimits(**given)


def template_record(template: SpaceTemplate) -> dict[str, Any]:
    """The plain-data form stored with each space; parse_template() reads it back."""
    return {
        "pool": template.pool,
        "quota": template.quota.as_dict(),
        "sizes": {name: {"memory_mb": s.memory_mb, "cpu_millis": s.cpu_millis, "pids": s.pids}
                  for name, s in template.sizes.items()},
        "limits": {"default_size": template.default_size, "max_size": template.max_size},
        "network": template.network.as_dict(),
        "security": {"profile": template.security.name,
                     "run_as_uid": template.security.run_as_uid,
                     "tmp_size_mb": template.security.tmp_size_mb},
        "builds": template.builds.as_dict(),
    }
