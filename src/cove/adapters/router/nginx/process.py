"""The nginx master process: started detached so apps keep serving while Cove is down."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from cove.adapters.router.nginx.render import (
    CHECK_HOST,
    RouterConfig,
    backends_of,
    generation_of,
    render,
)
from cove.domain.errors import RouteRefused
from cove.ports.router import Route

log = logging.getLogger(__name__)

class NginxError(Exception):
    pass


class NginxRouter:
    def __init__(self, config: RouterConfig, binary: str = "nginx",
                 watch_every: float = 0.2) -> None:
        self.config = config
        self.binary = binary
        self.prefix = Path(config.prefix)
        self.conf = self.prefix / "nginx.conf"
        self.watch_every = watch_every
        self._lock = threading.Lock()
        self._unwatched = threading.Event()
        self._watchdog: threading.Thread | None = None
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

    def serving(self) -> set[str]:
        if self.pid() is None or not self.conf.exists():
            return set()
        return backends_of(self.conf.read_text())

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
            self._watch()
        return changed

    def _watch(self) -> None:
        """Once this router has applied routes, a thread starts the master again with the
        last configuration whenever it dies (SIGKILL, SIGTERM, a crash): apps must not wait
        for the next apply, which comes with a pool's pass (and not at all if that pass
        fails before it reaches the routes)."""
        if self._watchdog is not None and self._watchdog.is_alive():
            return
        self._unwatched.clear()
        self._watchdog = threading.Thread(target=self._keep_alive, name="router-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def _keep_alive(self) -> None:
        while not self._unwatched.wait(self.watch_every):
            if self.pid() is not None:
                continue
            with self._lock:
                if self._unwatched.is_set() or self.pid() is not None:
                    continue
                try:
                    self._start()
                    self._wait_serving(generation_of(self.conf.read_text()))
                    log.warning("the router's master had died: started again")
                except Exception:
                    log.exception("starting the router again failed (tried again shortly)")

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
        self._clear_orphans()
        proc = self._nginx()
        if proc.returncode != 0:
            raise NginxError(f"nginx did not start: {proc.stderr.strip()}")
        deadline = time.monotonic() + 5
        while self.pid() is None and time.monotonic() < deadline:
            time.sleep(0.05)

    def _clear_orphans(self) -> None:
        """Workers of a master that died (SIGKILL, a crash) keep serving and keep the
        listening socket, so no new master could bind it: ask them to finish their requests
        and go (SIGQUIT), and make sure they did."""
        orphans = _holders(self.config.listen)
        for pid in orphans:
            _signal(pid, signal.SIGQUIT)
        deadline = time.monotonic() + ORPHANS_GRACE
        while time.monotonic() < deadline and any(_alive(pid) for pid in orphans):
            time.sleep(0.05)
        for pid in orphans & _holders(self.config.listen):  # still there: not a reused pid
            _signal(pid, signal.SIGKILL)

    def stop(self) -> None:
        self._unwatched.set()  # (a stopped router is not one that died)
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 10
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)


ORPHANS_GRACE = 2.0  # seconds orphaned workers get to finish their requests


def running_pid(prefix: Path) -> int | None:
    """The pid of the nginx master whose state is under `prefix`, if it runs (a pid file
    left by a master that died may name another process by now)."""
    try:
        pid = int((prefix / "nginx.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    title = _title(pid)
    return pid if _alive(pid) and title.startswith("nginx: master") \
        and f" -p {prefix} " in f"{title} " else None


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _holders(listen: str) -> set[int]:
    """Orphaned nginx workers (whose master is gone) holding a listening socket on the
    port of `listen` (host:port). A live master and its workers are never among them."""
    port = int(listen.rpartition(":")[2])
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    holders = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        title = _title(int(proc.name))
        if not title.startswith("nginx:") or title.startswith("nginx: master") or \
                _title(_parent(int(proc.name))).startswith("nginx: master"):
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                holders.add(int(proc.name))
        except OSError:
            continue  # gone meanwhile
    return holders


def _children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return {int(p) for p in handle.read().split()}
    except FileNotFoundError:
        return set()
