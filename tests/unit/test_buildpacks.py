"""Buildpacks: which one claims a source tree, and what it asks the builder to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cove.adapters.builder.buildpacks import Go, Node, Python, default_buildpacks
from cove.adapters.builder.stacks import Stack
from cove.domain.errors import Invalid

STACK = Stack(build="example/build:1", run="example/run:1")


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def detected(root: Path) -> list[str]:
    return [p.name for p in default_buildpacks(root / ".cache", STACK) if p.detect(root)]


def test_detection_order_puts_languages_before_static_sites(tmp_path: Path) -> None:
    tree(tmp_path, {"package.json": "{}", "public/index.html": "<p>"})
    assert detected(tmp_path) == ["nodejs", "static"]
    assert detected(tree(tmp_path / "go", {"go.mod": "module x\n"})) == ["go"]
    assert detected(tree(tmp_path / "py", {"pyproject.toml": ""})) == ["python"]


def cmd(dockerfile: str) -> list[str]:
    line = next(x for x in dockerfile.splitlines() if x.startswith("CMD "))
    parsed: list[str] = json.loads(line.removeprefix("CMD "))
    return parsed


def test_node_installs_from_the_lockfile_on_the_build_image_and_runs_on_the_run_image(
        tmp_path: Path) -> None:
    src = tree(tmp_path, {"package.json": json.dumps({"scripts": {"start": "node a.js"}}),
                          "package-lock.json": "{}"})
    out = Node(STACK).dockerfile(src)
    assert out.startswith("FROM example/build:1 AS build\n")
    assert "COPY --chown=10001:10001 package.json package-lock.json /app/\nRUN npm ci" in out
    assert "--omit=dev" in out and "\nFROM example/run:1\n" in out
    run_stage = out.split("FROM example/run:1\n")[1]
    assert run_stage.index("COPY --from=build /app/node_modules /app/node_modules") < \
        run_stage.index("COPY . /app")
    assert cmd(out) == ["/bin/sh", "-c", "exec node a.js"]


def test_node_without_a_lockfile_or_start_script(tmp_path: Path) -> None:
    src = tree(tmp_path, {"package.json": json.dumps({"main": "lib/main.js"}),
                          "lib/main.js": ""})
    out = Node(STACK).dockerfile(src)
    assert "RUN npm install --no-package-lock" in out and "package-lock" not in out.split(
        "\n")[2]
    assert cmd(out) == ["node", "lib/main.js"]
    assert cmd(Node(STACK).dockerfile(tree(tmp_path / "b", {"package.json": "{}",
                                                           "server.js": ""}))) == [
        "node", "server.js"]


def test_node_build_scripts_run_with_dev_dependencies_which_are_then_pruned(
        tmp_path: Path) -> None:
    src = tree(tmp_path, {"package.json": json.dumps({"scripts": {"build": "tsc",
                                                                  "start": "node dist"}})})
    out = Node(STACK).dockerfile(src)
    assert "npm run build && npm prune --omit=dev" in out
    assert "COPY --from=build /app /app" in out


@pytest.mark.parametrize("manifest,message", [
    ("{not json", "package.json is not valid JSON"),
    ("[]", "package.json is not valid JSON"),
    ("{}", "needs a start script"),
])
def test_node_refuses_what_it_cannot_run(tmp_path: Path, manifest: str, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        Node(STACK).dockerfile(tree(tmp_path, {"package.json": manifest}))


def test_go_downloads_modules_in_their_own_layer_and_ships_only_binaries(
        tmp_path: Path) -> None:
    src = tree(tmp_path, {"go.mod": "module example.com/shop/v2\n\ngo 1.19\n", "go.sum": "",
                          "main.go": "package main\n"})
    out = Go(STACK).dockerfile(src)
    assert ("COPY --chown=10001:10001 go.mod go.sum /src/\nRUN go mod download\n"
            "COPY --chown=10001:10001 . /src\n") in out
    assert "\nFROM example/run:1\nCOPY --from=build /app/bin/ /app/bin/\n" in out
    assert cmd(out) == ["/app/bin/shop"]
    cmd_tree = tree(tmp_path / "c", {"go.mod": "module m\n", "cmd/api/main.go": "package main",
                                     "lib.go": "package m"})
    assert cmd(Go(STACK).dockerfile(cmd_tree)) == ["/app/bin/api"]


@pytest.mark.parametrize("files,message", [
    ({"go.mod": "go 1.19\n"}, "no module line"),
    ({"go.mod": "module m\n", "lib.go": "package m"}, "no main package"),
])
def test_go_refuses_what_it_cannot_build(tmp_path: Path, files: dict[str, str],
                                         message: str) -> None:
    with pytest.raises(Invalid, match=message):
        Go(STACK).dockerfile(tree(tmp_path, files))


@pytest.mark.parametrize("files", [
    {"requirements.txt": "", "app.py": ""}, {"package.json": "{}", "index.js": ""},
    {"go.mod": "module m\n", "main.go": "package main"}])
def test_dependency_installs_and_compiles_run_unprivileged(tmp_path: Path,
                                                         files: dict[str, str]) -> None:
    root = tree(tmp_path, files)
    pack = next(p for p in default_buildpacks(root / ".cache", STACK) if p.detect(root))
    build = pack.dockerfile(root).split("FROM example/run:1")[0].splitlines()
    first_user = next(i for i, line in enumerate(build) if line.startswith("USER "))
    assert build[first_user] == "USER 10001:10001"
    assert [line for line in build[:first_user] if line.startswith("RUN")] == [
        build[1]] and build[1].startswith("RUN install -d -o 10001")


def test_python_builds_its_virtualenv_apart_from_the_code(tmp_path: Path) -> None:
    out = Python(STACK).dockerfile(tree(tmp_path, {"requirements.txt": "six\n", "app.py": ""}))
    build, run = out.split("FROM example/run:1\n")
    assert "pip install" in build and "COPY . /app" not in build
    # copied, not bind-mounted: builds may mount nothing from a stage (see the guard)
    assert run.startswith("WORKDIR /app\nCOPY --from=build /app/.venv /app/.venv")
    assert run.split("\n")[2] == "COPY . /app"


@pytest.mark.parametrize("files", [{"requirements.txt": "six\n", "app.py": ""},
                                   {"package.json": '{"scripts": {"start": "node a"}}'},
                                   {"go.mod": "module x\n", "main.go": "package main\n"}])
def test_dependency_installs_go_through_the_cache_and_the_app_never_sees_it(
        tmp_path: Path, files: dict[str, str]) -> None:
    root = tree(tmp_path, files)
    cache = {"PIP_INDEX_URL": "http://10.0.0.1:3141/pypi/simple/",
             "npm_config_registry": "http://10.0.0.1:3141/npm/"}
    pack = next(p for p in default_buildpacks(root / ".cache", STACK, lambda: cache)
                if p.detect(root))
    build, app = pack.dockerfile(root).split("FROM example/run:1")
    assert "ENV HOME=/tmp PIP_INDEX_URL=http://10.0.0.1:3141/pypi/simple/ " \
        "npm_config_registry=http://10.0.0.1:3141/npm/" in build.splitlines()
    assert "3141" not in app
