"""Buildpacks: detect how to build a source tree that has no Dockerfile of its own.

Each buildpack detects its kind of app and writes a Dockerfile for it, so every build
goes through the same sandboxed Dockerfile builder. The order is data: the operator's
plug-ins (Python entry points in the group `cove.buildpacks`) are tried after these.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from cove.adapters.builder.stacks import GO_STD_CACHE_DIR, Stack
from cove.domain.contract import RUN_AS_UID
from cove.domain.errors import BuildFailed, Invalid

STATIC_SERVER_SRC = Path(__file__).resolve().parents[2] / "data" / "static-server"


class Buildpack(Protocol):
    name: str

    def detect(self, source: Path) -> bool: ...

    def dockerfile(self, source: Path) -> str:
        """Prepare `source` (it may add files) and return the Dockerfile to build it with."""
        ...


UID = RUN_AS_UID
BUILDER = f"{UID}:{UID}"  # builds run as, and apps run as


Env = Callable[[], dict[str, str]]


class OnStack:
    """A buildpack that builds on the stack's build image and runs on its run image;
    `env` gives its build stage the dependency cache's addresses (asked at each build:
    the cache starts with the first)."""

    name: str

    def __init__(self, stack: Stack, env: Env | None = None) -> None:
        self.stack = stack
        self.env = env or dict

    def build_stage(self, *owned: str) -> list[str]:
        """The start of the build stage: everything after the first step (dependency
        installs run the packages' own scripts) runs as an unprivileged user, in
        directories it owns, on a build image without setuid programs. The dependency
        cache's addresses are the build stage's only: the app's image never sees them."""
        values = " ".join(f"{k}={v}" for k, v in sorted(self.env().items()))
        return [f"FROM {self.stack.build} AS build",
                f"RUN install -d -o {UID} -g {UID} {' '.join(owned)}",
                f"USER {BUILDER}", f"ENV HOME=/tmp {values}".rstrip(), f"WORKDIR {owned[0]}"]

    def run_stage(self, *steps: str, command: list[str]) -> list[str]:
        """The app's image: the run image, `steps`, then the command, run unprivileged."""
        return [f"FROM {self.stack.run}", *steps, f"USER {BUILDER}",
                f"CMD {json.dumps(command)}"]


def copy_dependencies(path: str) -> str:
    """Bring the build stage's dependencies (`path`) into the app's image. A COPY, not a
    RUN --mount of the build stage: that stage's files are the app's, and a symlink there
    could point a bind mount at the build host (builds refuse such mounts). buildah hashes
    what it copies, so unchanged dependencies still come from the cache."""
    return f"COPY --from=build {path} {path}"


class StaticSite:
    """index.html at the top, or a public/ directory: served by a small static server."""

    name = "static"

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    def detect(self, source: Path) -> bool:
        return (source / "index.html").is_file() or (source / "public").is_dir()

    def dockerfile(self, source: Path) -> str:
        if (source / "public").is_dir():
            root = "public/"
        else:  # the whole tree is the site: set it apart from what the build adds
            site = source / ".cove-site"
            site.mkdir()
            for entry in list(source.iterdir()):
                if entry != site:
                    entry.rename(site / entry.name)
            root = ".cove-site/"
        shutil.copy(self._server(), source / ".cove-static-server")
        return ("FROM scratch\n"
                "COPY --chmod=0755 .cove-static-server /cove/static-server\n"
                f"COPY {root} /app/public/\n"
                f"USER {BUILDER}\n"
                'CMD ["/cove/static-server", "/app/public"]\n')

    def _server(self) -> Path:
        """The static server binary, built once per source change (a static Go binary)."""
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(
            STATIC_SERVER_SRC.glob("*")) if p.is_file())).hexdigest()[:12]
        binary = self.cache / f"static-server-{digest}"
        if not binary.exists():
            self.cache.mkdir(parents=True, exist_ok=True)
            env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-trimpath")
            proc = subprocess.run(["go", "build", "-ldflags=-s -w", "-o", f"{binary}.tmp", "."],
                                  cwd=STATIC_SERVER_SRC, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise BuildFailed(f"the static buildpack's server did not build: {proc.stderr}")
            os.replace(f"{binary}.tmp", binary)
        return binary


class Python(OnStack):
    """requirements.txt or pyproject.toml: a virtualenv built on the build image.

    Dependencies are installed in their own layer before the code is copied, so a push
    that changes only code reuses them (buildah's layer cache); the app's image is the
    run image plus that virtualenv and the code.
    """

    name = "python"

    def detect(self, source: Path) -> bool:
        return (source / "requirements.txt").is_file() or (source / "pyproject.toml").is_file()

    def dockerfile(self, source: Path) -> str:
        if not (source / "Procfile").is_file() and not (source / "app.py").is_file():
            raise Invalid("a Python app needs a Procfile with a web process, or an app.py")
        pip = "/app/.venv/bin/pip install --no-cache-dir --disable-pip-version-check"
        lines = [*self.build_stage("/app"), "RUN python3 -m venv /app/.venv"]
        if (source / "requirements.txt").is_file():
            lines += [f"COPY --chown={BUILDER} requirements.txt /app/requirements.txt",
                      f"RUN {pip} -r /app/requirements.txt"]
            venv = copy_dependencies("/app/.venv")
        else:  # the virtualenv holds the app itself: copied by content
            lines += [f"COPY --chown={BUILDER} . /app", f"RUN {pip} /app"]
            venv = "COPY --from=build /app/.venv /app/.venv"
        lines += self.run_stage("WORKDIR /app", venv, "COPY . /app",
                                "ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1",
                                command=["python3", "app.py"])
        return "\n".join(lines) + "\n"


class Node(OnStack):
    """package.json: `npm ci` against the lockfile (or `npm install` without one).

    Production dependencies get their own layer keyed by package.json and the lockfile; a
    `build` script runs with the dev dependencies, which are pruned before the app's
    image (the run image: node, no npm) is made.
    """

    name = "nodejs"

    def detect(self, source: Path) -> bool:
        return (source / "package.json").is_file()

    def dockerfile(self, source: Path) -> str:
        try:
            manifest = json.loads((source / "package.json").read_text())
            if not isinstance(manifest, dict) or not isinstance(
                    manifest.get("scripts") or {}, dict):
                raise ValueError("it must be an object, with scripts an object")
            scripts: dict[str, object] = manifest.get("scripts") or {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise Invalid(f"package.json is not valid JSON: {exc}") from None
        locked = (source / "package-lock.json").is_file()
        install = "npm ci" if locked else "npm install --no-package-lock"
        manifests = "package.json package-lock.json" if locked else "package.json"
        cache = "--cache /tmp/npm-cache --no-audit --no-fund"
        lines = [*self.build_stage("/app"), f"COPY --chown={BUILDER} {manifests} /app/"]
        if "build" in scripts:
            lines += [f"RUN {install} {cache}", f"COPY --chown={BUILDER} . /app",
                      "RUN npm run build && npm prune --omit=dev " + cache]
            app = ["COPY --from=build /app /app"]
        else:
            lines += [f"RUN {install} --omit=dev {cache}"]
            app = [copy_dependencies("/app/node_modules"), "COPY . /app"]
        lines += self.run_stage("WORKDIR /app", *app,
                                "ENV NODE_ENV=production PATH=/app/node_modules/.bin:$PATH",
                                command=self._command(source, manifest, scripts))
        return "\n".join(lines) + "\n"

    @staticmethod
    def _command(source: Path, manifest: dict[str, object],
                 scripts: dict[str, object]) -> list[str]:
        if isinstance(scripts.get("start"), str):
            return ["/bin/sh", "-c", f"exec {scripts['start']}"]
        main = manifest.get("main")
        for candidate in ([main] if isinstance(main, str) else []) + ["server.js", "index.js",
                                                                       "app.js"]:
            if (source / candidate).is_file():
                return ["node", candidate]
        if (source / "Procfile").is_file():
            return ["node"]  # the Procfile's web command is what runs
        raise Invalid("a Node.js app needs a start script in package.json, a Procfile, or a "
                      "server.js")


class Go(OnStack):
    """go.mod: modules are downloaded in a layer keyed by go.mod and go.sum, then every
    main package is built statically; the app's image holds only the binaries."""

    name = "go"

    def detect(self, source: Path) -> bool:
        return (source / "go.mod").is_file()

    def dockerfile(self, source: Path) -> str:
        module = re.search(r"^module\s+(\S+)", (source / "go.mod").read_text("utf-8", "replace"),
                           re.MULTILINE)
        if module is None:
            raise Invalid("go.mod has no module line: run `go mod init <name>`")
        mains = [d for d in [source, *sorted((source / "cmd").glob("*"))]
                 if d.is_dir() and any("package main" in f.read_text("utf-8", "replace")
                                       for f in d.glob("*.go"))]
        if not mains and not (source / "Procfile").is_file():
            raise Invalid("no main package in this Go module (at the top or under cmd/)")
        web = (module.group(1).rstrip("/").split("/")[-1] if source in mains or not mains
               else mains[0].name)
        if re.fullmatch(r"v\d+", web):  # example.com/app/v2 builds a binary named app
            web = module.group(1).split("/")[-2]
        sums = "go.mod go.sum" if (source / "go.sum").is_file() else "go.mod"
        lines = [*self.build_stage("/src", "/app/bin"),
                 "ENV GOPATH=/tmp/go GOCACHE=/tmp/go-build GOFLAGS=-trimpath",
                 # the stack's compiled standard library, if it has one (see stacks)
                 f"RUN cp -r {GO_STD_CACHE_DIR} /tmp/go-build 2>/dev/null || true",
                 f"COPY --chown={BUILDER} {sums} /src/", "RUN go mod download",
                 f"COPY --chown={BUILDER} . /src",
                 'RUN go build -ldflags="-s -w" -o /app/bin/ ./...',
                 *self.run_stage("COPY --from=build /app/bin/ /app/bin/",
                                 "ENV PATH=/app/bin:$PATH", "WORKDIR /app",
                                 command=[f"/app/bin/{web}"])]
        return "\n".join(lines) + "\n"


def default_buildpacks(cache: Path, stack: Stack, env: Env | None = None) -> list[Buildpack]:
    packs: list[Buildpack] = [Python(stack, env), Node(stack, env), Go(stack, env),
                              StaticSite(cache)]
    for entry in entry_points(group="cove.buildpacks"):
        packs.append(entry.load()())
    return packs
