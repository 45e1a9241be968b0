"""Formation changes: validating `scale web=3 worker=1:large`-style requests."""

from __future__ import annotations

from cove.domain.errors import Invalid
from cove.domain.models import Autoscale, Process
from cove.domain.template import SpaceTemplate

MAX_COUNT = 100


def apply_scale(
    template: SpaceTemplate,
    current: dict[str, Process],
    process_types: set[str],
    changes: dict[str, tuple[int | None, str | None]],
) -> dict[str, Process]:
    """Return the new formation; raise Invalid for unknown types, counts or sizes."""
    result = {name: Process(p.count, p.size, p.autoscale) for name, p in current.items()}
    for name, (count, size) in changes.items():
        if name not in process_types:
            known = ", ".join(sorted(process_types)) or "none yet: deploy first"
            raise Invalid(f"no process type {name!r} in this app (process types: {known})")
        if count is not None and not 0 <= count <= MAX_COUNT:
            raise Invalid(f"count for {name} must be between 0 and {MAX_COUNT}")
        scaler = result[name].autoscale if name in result else None
        if count is not None and scaler is not None:
            raise Invalid(f"{name} is autoscaled between {scaler.min} and {scaler.max}: change "
                          f"that with `cove autoscale`, or turn it off first")
        proc = result.get(name, Process(0, template.default_size))
        if size is not None:
            template.size(size)  # validates name and maximum
            proc.size = size
        if count is not None:
            proc.count = count
        result[name] = proc
    return result


def default_formation(template: SpaceTemplate, process_types: set[str],
                      current: dict[str, Process]) -> dict[str, Process]:
    """Keep existing scale; new types start at 1 for web and 0 for the rest (Heroku's rule)."""
    result: dict[str, Process] = {}
    for name in sorted(process_types):
        if name in current:
            result[name] = current[name]
        else:
            result[name] = Process(1 if name == "web" else 0, template.default_size)
    return result


def apply_autoscale(template: SpaceTemplate, current: dict[str, Process], process: str,
                    autoscale: Autoscale | None) -> dict[str, Process]:
    """Set or clear autoscaling of one process type; the count starts at the minimum."""
    if process not in current:
        known = ", ".join(sorted(current)) or "none yet: deploy first"
        raise Invalid(f"no process type {process!r} in this app (process types: {known})")
    result = {name: Process(p.count, p.size, p.autoscale) for name, p in current.items()}
    proc = result[process]
    if autoscale is None:
        proc.autoscale = None
        return result
    if not 1 <= autoscale.min <= autoscale.max <= MAX_COUNT:
        raise Invalid(f"autoscaling needs 1 <= min <= max <= {MAX_COUNT}")
    if not 10 <= autoscale.cpu_percent <= 100:
        raise Invalid("the CPU target must be between 10 and 100 percent")
    proc.autoscale = autoscale
    proc.count = max(proc.count, autoscale.min) if proc.count <= autoscale.max else autoscale.max
    return result
