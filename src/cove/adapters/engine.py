"""The container engine's command runner: podman and buildah with Cove's own containers.conf
(cgroupfs, runc, file events). The local pool, the builder and the registry use it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

CONTAINERS_CONF = """\
# Written by Cove: the engine settings its instances need on this host.
[containers]
init_path = "{init}"
default_ulimits = ["nofile=4096:4096", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"

[network]
network_backend = "netavark"
"""

INIT_CANDIDATES = ("/usr/libexec/podman/catatonit", "/usr/bin/catatonit", "/usr/bin/tini")


class EngineError(Exception):
    def __init__(self, args: list[str], stderr: str, tool: str = "podman") -> None:
        super().__init__(f"{tool} {' '.join(args[:2])}: {stderr.strip()}")
        self.stderr = stderr


class Engine:
    def __init__(self, state_dir: Path, binary: str = "podman") -> None:
        self.binary = binary
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        conf = state_dir / "containers.conf"
        init = next((p for p in INIT_CANDIDATES if Path(p).exists()), INIT_CANDIDATES[0])
        text = CONTAINERS_CONF.format(init=init)
        if not conf.exists() or conf.read_text() != text:
            conf.write_text(text)
        self.env = dict(os.environ, CONTAINERS_CONF=str(conf))

    def run(self, *args: str, check: bool = True, timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        # (in Cove's own directory: the engine's monitor leaves files such as "oom" in
        # the directory it was started from)
        proc = subprocess.run([self.binary, *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout, input=input, cwd=self.state_dir)
        if check and proc.returncode != 0:
            raise EngineError(list(args), proc.stderr or proc.stdout)
        return proc

    def buildah(self, *args: str, timeout: float = 3600) -> str:
        """buildah with the same storage and settings; its output, or EngineError."""
        proc = subprocess.run(["buildah", *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout, cwd=self.state_dir)
        if proc.returncode != 0:
            raise EngineError(list(args), proc.stderr[-2000:], tool="buildah")
        return proc.stdout

    def json(self, *args: str) -> Any:
        out = self.run(*args).stdout.strip()
        return json.loads(out) if out else []
