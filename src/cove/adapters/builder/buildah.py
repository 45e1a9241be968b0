"""Dockerfile builds with buildah, inside limits: memory, CPU, wall clock, output size."""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from cove.adapters.builder.archive import extract
from cove.adapters.runtime.local.engine import Engine
from cove.domain.errors import BuildFailed, Invalid
from cove.ports.builder import BuildLimits, BuiltImage

DOCKERFILES = ("Dockerfile", "Containerfile")


class BuildahBuilder:
    def __init__(self, engine: Engine, binary: str = "buildah") -> None:
        self.engine = engine
        self.binary = binary

    def unpack(self, archive: BinaryIO, dest: Path) -> int:
        return extract(archive, dest)

    def build(self, source: Path, tag: str, limits: BuildLimits,
              emit: Callable[[str], None]) -> BuiltImage:
        dockerfile = next((source / n for n in DOCKERFILES if (source / n).is_file()), None)
        if dockerfile is None:
            raise Invalid("no Dockerfile or Containerfile at the top of the source: add one "
                          "(buildpacks for Python, Node.js, Go and static sites are not "
                          "available yet)")
        with tempfile.TemporaryDirectory(prefix="cove-build-") as work:
            iidfile = Path(work) / "iid"
            args = [
                self.binary, "bud", "--layers", "--isolation", "oci",
                # RUN steps get only the capabilities package installs need (no chroot,
                # mknod, raw sockets, ...), a memory cap without swap and a CPU share.
                "--cap-drop", "SYS_CHROOT,SETPCAP,SETFCAP,MKNOD,AUDIT_WRITE,NET_RAW,KILL,"
                              "NET_BIND_SERVICE",
                "--memory", f"{limits.memory_mb}m", "--memory-swap", f"{limits.memory_mb}m",
                "--cpu-period", "100000", "--cpu-quota", str(limits.cpu_millis * 100),
                "--ulimit", "nofile=4096:4096",
                "--iidfile", str(iidfile), "-f", str(dockerfile), "-t", tag, str(source),
            ]
            self._run(args, limits, emit)
            image_id = iidfile.read_text().strip().removeprefix("sha256:")
        return BuiltImage(image_id, "dockerfile")

    def _run(self, args: list[str], limits: BuildLimits, emit: Callable[[str], None]) -> None:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=self.engine.env, start_new_session=True)
        stopped: list[str] = []

        def stop(reason: str) -> None:
            if not stopped:
                stopped.append(reason)
                proc.kill()

        timer = threading.Timer(limits.timeout_seconds,
                                stop, [f"it ran longer than {limits.timeout_seconds}s"])
        timer.start()
        written = 0
        tail: list[str] = []
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                written += len(raw)
                if written > limits.max_output_bytes:
                    stop(f"it wrote more than {limits.max_output_bytes // 2**20} MiB of output")
                    break
                line = raw.decode("utf-8", "replace").rstrip("\n")
                tail = [*tail[-19:], line]
                emit(line)
            code = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if stopped:
            raise BuildFailed(f"the build was stopped: {stopped[0]}; the previous release "
                              "keeps serving")
        if code != 0:
            last = next((t for t in reversed(tail) if t.strip()), "no output")
            raise BuildFailed(f"the build failed (exit {code}): {last}; the previous release "
                              "keeps serving")
