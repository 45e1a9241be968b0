"""Real services for integration tests, started on loopback and stopped afterwards."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check, timeout: float = 30, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as err:
            last = err
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}: {last}")


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, env=env, input=input,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def hello_binary_path() -> Path:
    """The example app's static binary, as the image build script cached it."""
    build = run(str(ROOT / "scripts" / "build-example-image"), "--binary-only")
    return Path(build.stdout.strip())


def build_hello_image(tag: str) -> None:
    """The example app's image, built by the same script `make run` uses."""
    run(str(ROOT / "scripts" / "build-example-image"), tag)


def push(local_tag: str, dest: str, creds: str | None = None) -> None:
    args = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
    if creds:
        args += ["--dest-creds", creds]
    run(*args, f"containers-storage:{local_tag}", f"docker://{dest}")


@dataclass
class Registry:
    host: str  # 127.0.0.1:port
    proc: subprocess.Popen[bytes]
    root: Path

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


STARTED_REGISTRIES: list[str] = []  # host:port of every test registry, for Cove's allowlist


def start_registry(root: Path, htpasswd: Path | None = None) -> Registry:
    """Debian's docker-registry (distribution) on loopback, optionally with basic auth."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    auth = (f"auth:\n  htpasswd:\n    realm: cove-test\n    path: {htpasswd}\n"
            if htpasswd else "")
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + auth)
    log = (root / "registry.log").open("wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log)
    registry = Registry(f"127.0.0.1:{port}", proc, root)
    STARTED_REGISTRIES.append(registry.host)
    wait_until(lambda: httpx.get(f"http://{registry.host}/v2/").status_code in (200, 401),
               10, "the registry")
    return registry


def write_htpasswd(path: Path, user: str, password: str) -> None:
    import bcrypt

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    path.write_text(f"{user}:{hashed}\n")


@dataclass
class Postgres:
    url: str
    data: Path
    user: str
    pg_ctl: str

    def stop(self) -> None:
        _as_user(self.user, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop")


def _as_user(user: str, *args: str) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        return run("runuser", "-u", user, "--", *args)
    return run(*args)


def start_postgres(root: Path) -> Postgres:
    """A throwaway PostgreSQL server on loopback (trust auth), owned by the postgres user."""
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    bindir = next((p for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)),
                  None)
    initdb = str(bindir / "initdb") if bindir else "initdb"
    pg_ctl = str(bindir / "pg_ctl") if bindir else "pg_ctl"
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, user)
    data = root / "data"
    port = free_port()
    _as_user(user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    _as_user(user, pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o",
             f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    return Postgres(url, data, user, pg_ctl)
