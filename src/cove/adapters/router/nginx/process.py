"""The nginx master process: started detached so apps keep serving while Cove is down."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from cove.adapters.router.nginx.render import CHECK_HOST, RouterConfig, generation_of, render
from cove.domain.errors import RouteRefused
from cove.ports.router import Route


class NginxError(Exception):
    pass


class NginxRouter:
    def __init__(self, config: RouterConfig, binary: str = "nginx") -> None:
        self.config = config
        self.binary = binary
        self.prefix = Path(config.prefix)
        self.conf = self.prefix / "nginx.conf"
        self._lock = threading.Lock()
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.prefix / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        if config.user and os.geteuid() == 0:
            nobody = pwd.getpwnam(config.user.split()[0])
            for path in (self.prefix / "tmp").rglob("*"):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)

    def _nginx(self, *args: str, conf: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.binary, "-p", str(self.prefix), "-c", str(conf or self.conf),
                               *args], capture_output=True, text=True, timeout=30)

    def pid(self) -> int | None:
        return running_pid(self.prefix)

    def apply(self, routes: list[Route]) -> bool:
        text = render(self.config, routes)
        with self._lock:
            changed = not self.conf.exists() or self.conf.read_text() != text
            if changed:
                candidate = self.conf.with_suffix(".new")
                candidate.write_text(text)
                test = self._nginx("-t", "-q", conf=candidate)
                if test.returncode != 0:  # nothing is replaced: the running config serves on
                    candidate.unlink(missing_ok=True)
                    raise RouteRefused("the router refused the new routes, nothing changed: "
                                       f"{test.stderr.strip()[-300:]}")
                candidate.replace(self.conf)
            pid = self.pid()
            if pid is None:
                self._start()
            elif changed:
                self._reload(pid)
            self._wait_serving(generation_of(text))
        return changed

    def _wait_serving(self, generation: str, timeout: float = 5) -> None:
        """Until nginx answers with this configuration (old workers may linger a moment)."""
        host, _, port = self.config.listen.rpartition(":")
        address = "127.0.0.1" if host in ("0.0.0.0", "", "*") else host.strip("[]")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((address, int(port)), timeout=1) as conn:
                    conn.sendall(f"GET / HTTP/1.0\r\nHost: {CHECK_HOST}\r\n\r\n".encode())
                    answer = b""
                    while chunk := conn.recv(4096):
                        answer += chunk
                if answer.rstrip().endswith(generation.encode()):
                    return
            except OSError:
                pass
            time.sleep(0.01)

    def _reload(self, pid: int) -> None:
        """Graceful reload, returning once new workers (with the new config) are up."""
        before = _children(pid)
        os.kill(pid, signal.SIGHUP)  # old workers finish their requests, then exit
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (_children(pid) - before):
            time.sleep(0.005)
        # The master tells old workers to stop accepting right after starting new ones;
        # give that a moment (old workers may linger much longer serving long requests).
        settle = time.monotonic() + 0.2
        while time.monotonic() < settle and _children(pid) & before:
            time.sleep(0.005)

    def _start(self) -> None:
        proc = self._nginx()
        if proc.returncode != 0:
            raise NginxError(f"nginx did not start: {proc.stderr.strip()}")
        deadline = time.monotonic() + 5
        while self.pid() is None and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 10
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)


def running_pid(prefix: Path) -> int | None:
    """The pid of the nginx master whose state is under `prefix`, if it runs."""
    try:
        pid = int((prefix / "nginx.pid").read_text().strip())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def _children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return {int(p) for p in handle.read().split()}
    except FileNotFoundError:
        return set()
