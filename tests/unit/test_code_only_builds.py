"""Code-only changes skip the build: when they may, and the layer they get."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from cove.adapters.builder import fastpath
from cove.adapters.builder.buildpacks import Go, Node, Python
from cove.adapters.builder.stacks import Stack
from tests.unit.test_buildpacks import tree

STACK = Stack(build="example/build:1", run="example/run:1")


def python_app(root: Path) -> tuple[Path, str]:
    tree(root, {"requirements.txt": "six==1.16.0\n", "app.py": "print('hi')\n"})
    return root, Python(STACK).dockerfile(root)


def test_the_key_follows_the_dependencies_and_the_dockerfile_not_the_code(
        tmp_path: Path) -> None:
    source, dockerfile = python_app(tmp_path)
    first = fastpath.plan(dockerfile, source)
    (source / "app.py").write_text("print('hello')\n")
    (source / "new.py").write_text("")
    assert fastpath.plan(dockerfile, source) == first
    (source / "requirements.txt").write_text("six==1.17.0\n")
    assert fastpath.plan(dockerfile, source).key != first.key
    assert fastpath.plan(dockerfile + "LABEL x=y\n", source).key != \
        fastpath.plan(dockerfile, source).key
    assert (first.uid, first.gid) == (0, 0)  # the final COPY gives no owner


def test_node_without_a_build_script_may_skip_its_build(tmp_path: Path) -> None:
    tree(tmp_path, {"package.json": '{"dependencies": {}, "scripts": {"start": "node s.js"}}',
                    "package-lock.json": "{}", "s.js": ""})
    fastpath.plan(Node(STACK).dockerfile(tmp_path), tmp_path)


@pytest.mark.parametrize("why, files, dockerfile", [
    ("compiled", {"go.mod": "module x\n\ngo 1.19\n", "main.go": "package main\n"}, "go"),
    ("installed from the code", {"pyproject.toml": "", "app.py": ""}, "python"),
    ("an ignore file", {"requirements.txt": "", "app.py": "", ".dockerignore": "x"}, "python"),
    ("ADD", {"a": ""}, "FROM x\nADD a /a\nCOPY . /app\n"),
    ("not last", {"a": ""}, "FROM x\nCOPY . /app\nRUN true\n"),
    ("a wildcard", {"a": ""}, "FROM x\nCOPY *.txt /x/\nCOPY . /app\n"),
    ("a directory", {"d/a": ""}, "FROM x\nCOPY d /d\nCOPY . /app\n"),
    ("outside", {"a": ""}, "FROM x\nCOPY ../a /a\nCOPY . /app\n"),
    # A tenant's Dockerfile the build would refuse: never a crash, always the build's verdict.
    ("a bare COPY", {"a": ""}, "FROM x\nCOPY\nCOPY . /app\n"),
    ("a COPY without a source", {"a": ""}, "FROM x\nCOPY --chown=1 /x\nCOPY . /app\n"),
    ("an open quote", {"a": ""}, 'FROM x\nCOPY "a b /x\nCOPY . /app\n'),
    ("another escape", {"a": ""}, "# escape=`\nFROM x\nCOPY a /a\nCOPY . /app\n"),
    ("a heredoc", {"a": ""}, "FROM x\nCOPY <<EOF /x\nhi\nEOF\nCOPY . /app\n"),
])
def test_what_must_be_built(tmp_path: Path, why: str, files: dict[str, str],
                            dockerfile: str) -> None:
    tree(tmp_path, files)
    text = {"go": lambda: Go(STACK).dockerfile(tmp_path),
            "python": lambda: Python(STACK).dockerfile(tmp_path)}.get(dockerfile,
                                                                      lambda: dockerfile)()
    with pytest.raises(fastpath.NotEligible):
        fastpath.plan(text, tmp_path)


def test_a_dependency_file_that_is_a_link_is_built(tmp_path: Path) -> None:
    """requirements.txt as a link to a host file: hashing it would read the host."""
    source, dockerfile = python_app(tmp_path)
    (source / "requirements.txt").unlink()
    (source / "requirements.txt").symlink_to("/etc/hostname")
    with pytest.raises(fastpath.NotEligible, match="not a plain file"):
        fastpath.plan(dockerfile, source)


def test_the_layer_holds_links_as_links_and_owners_as_the_copy_gives(tmp_path: Path) -> None:
    source = tree(tmp_path / "src", {"app.py": "x", "lib/util.py": "y"})
    (source / "secret").symlink_to("/etc/shadow")
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o750)
    os.link(source / "app.py", source / "same.py")
    digest, size = fastpath.write_layer(source, tmp_path / "layer.tar", 0, 0)
    assert size == (tmp_path / "layer.tar").stat().st_size and digest.startswith("sha256:")
    with tarfile.open(tmp_path / "layer.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"app", "app/app.py", "app/lib", "app/lib/util.py",
                                "app/secret", "app/run.sh", "app/same.py"}
        assert members["app/secret"].issym() and members["app/secret"].linkname == "/etc/shadow"
        assert members["app/run.sh"].mode == 0o750
        assert {(m.uid, m.gid, m.uname) for m in members.values()} == {(0, 0, "")}
        linked = members["app/same.py"] if members["app/same.py"].islnk() else members["app/app.py"]
        assert linked.islnk()
        reg = tar.extractfile(members["app/lib/util.py"])
        assert reg is not None and reg.read() == b"y"


def test_a_special_file_means_a_build(tmp_path: Path) -> None:
    source = tree(tmp_path / "src", {"app.py": "x"})
    os.mkfifo(source / "pipe")
    with pytest.raises(fastpath.NotEligible, match="special"):
        fastpath.write_layer(source, tmp_path / "layer.tar", 0, 0)

