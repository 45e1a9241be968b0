"""Buildpacks: detect how to build a source tree that has no Dockerfile of its own.

Each buildpack detects its kind of app and writes a Dockerfile for it, so every build
goes through the same sandboxed Dockerfile builder. The order is data: the operator's
plug-ins (Python entry points in the group `cove.buildpacks`) are tried after these.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from cove.domain.errors import BuildFailed, Invalid

GENERATED = ".cove-Dockerfile"
STATIC_SERVER_SRC = Path(__file__).resolve().parents[2] / "data" / "static-server"


class Buildpack(Protocol):
    name: str

    def detect(self, source: Path) -> bool: ...

    def dockerfile(self, source: Path) -> str:
        """Prepare `source` (it may add files) and return the Dockerfile to build it with."""
        ...


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
                "USER 10001:10001\n"
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


class Python:
    """requirements.txt or pyproject.toml: a virtualenv on the Debian stack.

    Dependencies are installed in their own layer before the code is copied, so a push
    that changes only code reuses them (buildah's layer cache).
    """

    name = "python"

    def __init__(self, stack: str) -> None:
        self.stack = stack

    def detect(self, source: Path) -> bool:
        return (source / "requirements.txt").is_file() or (source / "pyproject.toml").is_file()

    def dockerfile(self, source: Path) -> str:
        if not (source / "Procfile").is_file() and not (source / "app.py").is_file():
            raise Invalid("a Python app needs a Procfile with a web process, or an app.py")
        lines = [f"FROM {self.stack}", "WORKDIR /app",
                 "RUN python3 -m venv /app/.venv"]
        if (source / "requirements.txt").is_file():
            lines += ["COPY requirements.txt /app/requirements.txt",
                      "RUN /app/.venv/bin/pip install --no-cache-dir --disable-pip-version-check"
                      " -r /app/requirements.txt"]
        lines += ["COPY . /app"]
        if not (source / "requirements.txt").is_file():
            lines += ["RUN /app/.venv/bin/pip install --no-cache-dir "
                      "--disable-pip-version-check /app"]
        lines += ["ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1",
                  "USER 10001:10001", 'CMD ["python3", "app.py"]']
        return "\n".join(lines) + "\n"


def default_buildpacks(cache: Path, stack: str) -> list[Buildpack]:
    packs: list[Buildpack] = [Python(stack), StaticSite(cache)]
    for entry in entry_points(group="cove.buildpacks"):
        packs.append(entry.load()())
    return packs
