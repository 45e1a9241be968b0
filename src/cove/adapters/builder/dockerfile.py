"""What a tenant's Dockerfile may name, and a build cache that is the space's own.

Every build shares this machine's image store. Unchecked, a Dockerfile could start
`FROM` another tenant's built image, or an image another tenant pulled with its own
registry credentials, and buildah's layer cache (keyed by the parent layer and the
instruction's text, not by what a `RUN --mount` brings in) would hand one space's layers
to another. So, before a build:

- base images come from a registry, resolved anonymously to a digest (what anyone may
  pull), or are the stacks, `scratch` or an earlier stage; other local images are refused;
- `COPY --from` and `RUN --mount from=` name stages only; cache mounts are refused;
- a label naming the space follows every `FROM`, so every cached layer is the space's own.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cove.domain.errors import Invalid

# ADD's sources that are fetched rather than copied: URLs and git repositories.
REMOTE = re.compile(r"(^|[\s\"'\[,])([a-z][a-z0-9+.-]*://|git@)", re.I)

SCOPE_LABEL = "cove.build-scope"
_DIRECTIVE = re.compile(r"^#\s*(\w+)\s*=\s*(\S+)\s*$")


@dataclass(frozen=True)
class BasePolicy:
    local: frozenset[str]  # images in the local store that builds may start from (stacks)
    resolve: Callable[[str], str] | None  # registry image -> repository@sha256:...


@dataclass(frozen=True)
class Guarded:
    text: str  # the Dockerfile to build
    local_bases: frozenset[str]  # the local images (stacks) it starts from
    bases: frozenset[str]  # every image it starts from (local or pinned registry images)


def guard_dockerfile(text: str, scope: str, policy: BasePolicy,
                     alias: Callable[[str], str] = lambda ref: ref) -> Guarded:
    """Return the Dockerfile to build: bases pinned (and named as `alias` names them where
    the build runs), stages checked, cache scoped."""
    escape, head, body = _split_directives(text)
    out = list(head)
    stages: set[str] = set()
    local: set[str] = set()
    bases: set[str] = set()
    for instruction in _instructions(body, escape):
        word, _, rest = instruction.strip().partition(" ")
        keyword = word.upper()
        if keyword == "FROM":
            line, base = _from(rest, stages, policy, alias)
            if base in policy.local:
                local.add(base)
            if base is not None:
                bases.add(base)
            out += [line, f'LABEL {SCOPE_LABEL}="{scope}"']
            continue
        if keyword in ("COPY", "ADD"):
            for flag in _flags(rest):
                if flag.startswith("--from="):
                    _stage_only(flag.removeprefix("--from="), stages, f"{keyword} --from")
            if keyword == "ADD" and REMOTE.search(rest):
                raise Invalid("Dockerfile: ADD of a URL or a git repository is fetched by "
                                  "the build host, outside the build's network: download it in "
                                  "a RUN step (curl, git clone) instead")
        elif keyword == "RUN":
            for flag in _flags(rest):
                if flag.startswith("--mount="):
                    _check_mount(flag.removeprefix("--mount="), stages)
        out.append(instruction)
    return Guarded("\n".join(out) + "\n", frozenset(local), frozenset(bases))


def _split_directives(text: str) -> tuple[str, list[str], list[str]]:
    lines = text.splitlines()
    escape, head = "\\", []
    while lines and (match := _DIRECTIVE.match(lines[0])):
        if match.group(1).lower() == "escape":
            escape = match.group(2)
        head.append(lines.pop(0))
    return escape, head, lines


def _instructions(lines: Iterable[str], escape: str) -> list[str]:
    """Logical instructions: continuation lines joined as the Dockerfile parser joins
    them, comments and blank lines dropped."""
    found: list[str] = []
    current = ""
    for raw in lines:
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw.rstrip().endswith(escape):
            current += raw.rstrip()[:-1]
            continue
        found.append(current + raw)
        current = ""
    if current:
        found.append(current)
    return found


def _flags(rest: str) -> list[str]:
    try:
        words = shlex.split(rest)
    except ValueError:
        words = rest.split()
    flags = []
    for word in words:
        if not word.startswith("--"):
            break
        flags.append(word)
    return flags


def _from(rest: str, stages: set[str], policy: BasePolicy,
          alias: Callable[[str], str]) -> tuple[str, str | None]:
    """The FROM line to build with, and the image it starts from (pinned; None for a
    stage or scratch)."""
    words = rest.split()
    flags = [w for w in words if w.startswith("--")]
    args = [w for w in words if not w.startswith("--")]
    if not args:
        raise Invalid("Dockerfile: FROM needs an image")
    image = args[0]
    if len(args) >= 3 and args[1].upper() == "AS":
        stage = args[2].lower()
    elif len(args) == 1:
        stage = None
    else:
        raise Invalid(f"Dockerfile: cannot read `FROM {rest.strip()}`")
    if "$" in image:
        raise Invalid(f"Dockerfile: FROM {image}: write the base image's name, not a variable")
    if image.lower() in stages or image == "scratch":
        if stage:
            stages.add(stage)
        return " ".join(["FROM", *flags, image, *(["AS", stage] if stage else [])]), None
    if image in policy.local:
        pinned = image
    elif image.startswith("localhost/") or image.startswith("containers-storage:"):
        raise Invalid(f"Dockerfile: base image {image} is not one builds may use: start from "
                      "the stack, scratch, or an image in a registry")
    elif policy.resolve is not None:
        pinned = policy.resolve(image)
    else:
        pinned = image
    if stage:
        stages.add(stage)
    return " ".join(["FROM", *flags, alias(pinned),
                     *(["AS", stage] if stage else [])]), pinned


def _stage_only(ref: str, stages: set[str], what: str) -> None:
    if ref.lower() not in stages and not ref.isdigit():
        raise Invalid(f"Dockerfile: {what}={ref}: name an earlier stage (FROM image AS name); "
                      "other images are not available to builds")


def _check_mount(spec: str, stages: set[str]) -> None:
    """Only scratch space may be mounted into a RUN step. Every other kind reaches past the
    step: cache mounts are shared across spaces, and the build host's buildah has let bind
    mounts out (CVE-2024-1753: a stage's symlink to / mounted the host's root; CVE-2024-9407:
    bind-propagation options passed to mount; CVE-2024-11218: mounts racing concurrent
    stages)."""
    options = dict(part.partition("=")[::2] for part in spec.split(","))
    kind = options.get("type", "bind")
    if kind == "cache":
        raise Invalid("Dockerfile: RUN --mount=type=cache is not available: cache mounts "
                      "would be shared with other spaces' builds")
    if "from" in options:
        _stage_only(options["from"], stages, "RUN --mount from")
    if kind != "tmpfs":
        raise Invalid(f"Dockerfile: RUN --mount=type={kind} is not available (only tmpfs "
                      "mounts are): copy what a step needs with COPY or COPY --from instead")
    extra = sorted(set(options) - {"type", "target", "dst", "destination", "size"})
    if extra:
        raise Invalid(f"Dockerfile: RUN --mount option {', '.join(extra)} is not available "
                      "(a tmpfs mount takes target and size)")
