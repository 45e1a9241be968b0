"""A tenant's Dockerfile may not start from other tenants' images or share their cache."""

from __future__ import annotations

import pytest

from cove.adapters.builder.dockerfile import BasePolicy, guard_dockerfile
from cove.domain.errors import Invalid

STACK = "localhost/cove/stack-run:bookworm"


def resolve(image: str) -> str:
    return f"{image.rsplit(':', 1)[0]}@sha256:{'a' * 64}"


POLICY = BasePolicy(frozenset({STACK}), resolve)


def guard(text: str) -> list[str]:
    return guard_dockerfile(text, "team-7", POLICY).text.splitlines()


def test_every_stage_gets_the_spaces_cache_label_and_registry_bases_are_pinned() -> None:
    assert guard("# syntax=docker/dockerfile:1\n"
                 "FROM registry.example:5000/base/go:1.22 AS build\n"
                 "RUN make \\\n    all\n"
                 "# a comment\n"
                 f"FROM {STACK}\n"
                 "COPY --from=build /out /app\n") == [
        "# syntax=docker/dockerfile:1",
        f"FROM registry.example:5000/base/go@sha256:{'a' * 64} AS build",
        'LABEL cove.build-scope="team-7"',
        "RUN make     all",
        f"FROM {STACK}",
        'LABEL cove.build-scope="team-7"',
        "COPY --from=build /out /app"]


def test_scratch_stages_and_indexes_need_no_registry() -> None:
    lines = guard("FROM scratch AS a\nFROM a\nCOPY --from=0 /x /x\nCOPY --from=a /y /y\n"
                  "RUN --mount=type=tmpfs,target=/scratch true\n")
    assert lines[0] == "FROM scratch AS a" and lines[2] == "FROM a"


@pytest.mark.parametrize("text, message", [
    ("FROM localhost/cove-builds/victim/shop:build-1\n", "not one builds may use"),
    ("FROM containers-storage:abc\n", "not one builds may use"),
    ("ARG BASE=localhost/cove-builds/victim/shop:build-1\nFROM ${BASE}\n", "not a variable"),
    ("FROM scratch\nCOPY --from=localhost/cove-builds/victim/shop:build-1 /app /app\n",
     "name an earlier stage"),
    ("FROM scratch\nCOPY --from=registry.example/x:1 /app /app\n", "name an earlier stage"),
    ("FROM scratch\nRUN --mount=type=cache,target=/root/.cache true\n", "type=cache"),
    ("FROM scratch\nRUN --mount=type=bind,from=localhost/x:1,target=/x true\n",
     "name an earlier stage"),
    # CVE-2024-1753: a bind mount from a stage whose source is a symlink to / mounted the
    # build host's root; every bind mount goes, from a stage or from the context.
    ("FROM scratch AS base\nRUN ln -s / /rootdir\nFROM scratch\n"
     "RUN --mount=type=bind,from=base,source=/rootdir,destination=/exploit,rw true\n",
     "type=bind is not available"),
    ("FROM scratch\nRUN --mount=source=/,target=/host true\n", "type=bind is not available"),
    ("FROM scratch\nRUN --mount=type=bind,source=.,target=/ctx true\n",
     "type=bind is not available"),
    # CVE-2024-9407: options passed through to mount(2)
    ("FROM scratch\nRUN --mount=type=tmpfs,target=/t,bind-propagation=rshared true\n",
     "option bind-propagation is not available"),
    ("FROM scratch\nRUN --mount=type=secret,id=x true\n", "type=secret is not available"),
    ("FROM scratch\nRUN --mount=type=ssh true\n", "type=ssh is not available"),
    ("FROM\n", "FROM needs an image"),
    ("FROM a b c d\n", "cannot read"),
])
def test_what_would_reach_beyond_the_space_is_refused(text: str, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        guard(text)


def test_a_later_stage_name_cannot_launder_an_image() -> None:
    with pytest.raises(Invalid, match="name an earlier stage"):
        guard("FROM scratch\nCOPY --from=later /x /x\nFROM scratch AS later\n")
