"""Formation changes: validating `scale web=3 worker=1:large`-style requests."""

from __future__ import annotations

from cove.domain.errors import Invalid
from cove.domain.models import Process
from cove.domain.template import SpaceTemplate

MAX_COUNT = 100


def apply_scale(
    template: SpaceTemplate,
    current: dict[str, Process],
    process_types: set[str],
    changes: dict[str, tuple[int | None, str | None]],
) -> dict[str, Process]:
    """Return the new formation; raise Invalid for unknown types, counts or sizes."""
    result = {name: Process(p.count, p.size) for name, p in current.items()}
    for name, (count, size) in changes.items():
        if name not in process_types:
            known = ", ".join(sorted(process_types)) or "none yet: deploy first"
            raise Invalid(f"no process type {name!r} in this app (process types: {known})")
        if count is not None and not 0 <= count <= MAX_COUNT:
            raise Invalid(f"count for {name} must be between 0 and {MAX_COUNT}")
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
