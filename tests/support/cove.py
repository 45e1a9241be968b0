"""A real Cove server (API, reconciler, nginx, podman) and CLI users for end-to-end tests."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.services import STARTED_REGISTRIES, free_port, wait_until


@dataclass
class CoveServer:
    home: Path
    router_port: int
    api_port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    users: dict[str, CliUser] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.router_port}"

    def start(self) -> None:
        log = (self.home / "server.log").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "cove.server"], env=self.env,
                                     stdout=log, stderr=log, start_new_session=True)
        wait_until(lambda: httpx.get(f"{self.url}/healthz").status_code == 200, 60,
                   f"cove-server (see {self.home / 'server.log'})")

    def kill(self) -> None:
        """Stop the broker abruptly (SIGKILL): router and instances are left running."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def teardown(self) -> None:
        self.kill()
        subprocess.run([sys.executable, "-m", "cove.server", "teardown"], env=self.env,
                       capture_output=True, timeout=300)

    def app_get(self, host: str, path: str = "/") -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers={"Host": host, "Connection": "close"},
                         timeout=10)

    def admin(self, name: str) -> CliUser:
        """A platform admin (made with `cove-server create-admin`), logged in."""
        password = f"{name}-password1"
        subprocess.run([sys.executable, "-m", "cove.server", "create-admin", name],
                       env=dict(self.env, COVE_ADMIN_PASSWORD=password), check=True,
                       capture_output=True, timeout=120)
        admin = self.user(name)
        admin.run("login", name, "--password-stdin", input=password + "\n")
        return admin

    def tenant(self, name: str, *apps: str) -> CliUser:
        """A user who has just signed up and created `apps` in their own space."""
        user = self.user(name)
        user.signup()
        for app in apps:
            user.run("apps", "create", app)
        return user

    def user(self, name: str) -> CliUser:
        if name not in self.users:
            config = self.home / "cli" / name
            config.mkdir(parents=True, exist_ok=True)
            self.users[name] = CliUser(name, dict(os.environ, COVE_URL=self.url,
                                                  COVE_CONFIG_DIR=str(config)), self)
        return self.users[name]


@dataclass
class CliUser:
    name: str
    env: dict[str, str]
    server: CoveServer

    def run(self, *args: str, input: str | None = None, ok: bool = True,
            cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        # Not in the project's own checkout by default: some commands act on the git
        # work tree they are run in.
        proc = subprocess.run([sys.executable, "-m", "cove.cli.main", *args], env=self.env,
                              capture_output=True, text=True, input=input or "",
                              timeout=timeout,
                              cwd=cwd or self.server.home)
        if ok and proc.returncode != 0:
            raise AssertionError(f"cove {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
        if not ok and proc.returncode == 0:
            raise AssertionError(f"cove {' '.join(args)} should have failed: {proc.stdout}")
        return proc

    @contextmanager
    def following(self, *args: str, wait: float = 60) -> Iterator[Callable[..., str]]:
        """Run a streaming command (e.g. `logs -f`); yield a function reading its next line,
        which fails after `wait` seconds (or the wait it is given) without one."""
        proc = subprocess.Popen([sys.executable, "-m", "cove.cli.main", *args], env=self.env,
                                stdout=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()

        def next_line(within: float = wait) -> str:
            try:
                return lines.get(timeout=within)
            except queue.Empty:
                raise AssertionError(f"`cove {' '.join(args)}` printed nothing within "
                                     f"{within:.0f}s") from None

        try:
            time.sleep(1.5)  # let the stream begin before the test makes news
            yield next_line
        finally:
            proc.kill()
            proc.wait()

    def signup(self, password: str = "password123") -> None:
        self.run("signup", self.name, "--password-stdin", input=password + "\n")

    @property
    def token(self) -> str:
        import json

        config = Path(self.env["COVE_CONFIG_DIR"]) / "config.json"
        return str(json.loads(config.read_text())["token"])

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=300,
                            headers={"Authorization": f"Bearer {self.token}"})


def make_server(root: Path, **extra: str) -> CoveServer:
    home = root / "cove"
    home.mkdir(parents=True, exist_ok=True)
    router_port, api_port = free_port(), free_port()
    # The session's registries are the operator's: tenants may pull from them, and from no
    # other address of this machine.
    env = dict(os.environ, COVE_HOME=str(home), COVE_ROUTER_PORT=str(router_port),
               COVE_API_PORT=str(api_port), COVE_RECONCILE_INTERVAL="0.5",
               COVE_DRAIN_SECONDS="1", COVE_POOL_RECONCILE_INTERVAL="1",
               COVE_LOCAL_REGISTRIES=",".join(STARTED_REGISTRIES))
    env.update(extra)
    return CoveServer(home, router_port, api_port, env)


@contextmanager
def hammering(cove: CoveServer, host: str) -> Iterator[dict[str, Any]]:
    """Request the app through Cove's router in a loop while the block runs."""
    with requesting(lambda: cove.app_get(host)) as stats:
        yield stats


@contextmanager
def requesting(get: Callable[[], httpx.Response]) -> Iterator[dict[str, Any]]:
    """Call `get` in a loop while the block runs; count what a user would see fail (with
    why) and which releases answered (the example app names its release)."""
    stats: dict[str, Any] = {"ok": 0, "failed": 0, "errors": [], "releases": set()}
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                response = get()
                detail = f"HTTP {response.status_code}"
            except httpx.HTTPError as err:
                response, detail = None, type(err).__name__
            if response is not None and response.status_code == 200:
                stats["ok"] += 1
                if "release=" in response.text:
                    stats["releases"].add(response.text.split("release=")[1].split()[0])
            else:
                stats["failed"] += 1
                stats["errors"].append(detail)

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        yield stats
    finally:
        stop.set()
        worker.join()
