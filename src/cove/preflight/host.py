"""`cove-server doctor`: is this machine ready to run Cove? One check a line, a fix for each.

Groups: `install` (the tools of `requirements.TOOLS` and the Python packages, and podman
finding its network stack), `host` (kernel features the limits need, the firewall, ports,
disk, the state directory) and `platform` (stacks, the database, the pools). The server runs
`install` and `host` before it starts and refuses to start on a failure.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import socket
import subprocess
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cove.adapters.router.nginx.process import running_pid
from cove.domain.checks import FAIL, PASS, WARN, Check
from cove.preflight.requirements import SCOPES, SERVER_SCOPES, Tool, parse_version, tools
from cove.settings import ServerSettings

GROUPS = ("install", "host", "platform")
INSTALL_FIX = "run scripts/install-deps"
GIB = 1 << 30


def _version(tool: Tool, where: str) -> str:
    if not tool.version_args:
        return ""
    try:
        proc = subprocess.run([where, *tool.version_args], capture_output=True, text=True,
                              timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (proc.stdout + proc.stderr).strip()


def tool_check(tool: Tool, path: str | None = None) -> Check:
    where = tool.locate(path)
    why = f"{tool.why} ({SCOPES[tool.scope]})"
    if where is None:
        return Check("install", tool.name, FAIL, "not found", why,
                     f"apt-get install {tool.package}, or {INSTALL_FIX}")
    found = parse_version(_version(tool, where))
    shown = ".".join(map(str, found)) or "present"
    if tool.minimum and found and found < tool.minimum:
        return Check("install", tool.name, FAIL,
                     f"{shown} at {where}, older than {'.'.join(map(str, tool.minimum))}", why,
                     f"install a newer {tool.package}")
    return Check("install", tool.name, PASS, f"{shown} at {where}", why)


def _lower_bound(requirement: str) -> tuple[str, tuple[int, ...]]:
    """`psycopg[binary]>=3.1; extra == "dev"` -> ("psycopg", (3, 1))."""
    spec = requirement.split(";")[0]
    name = re.split(r"[\[<>=!~ ]", spec, maxsplit=1)[0]
    found = re.search(r">=\s*([\d.]+)", spec)
    return name, tuple(int(p) for p in found.group(1).split(".") if p) if found else ()


def python_checks(dev: bool) -> list[Check]:
    """Cove's Python packages, read from its own metadata (pyproject.toml), not a copy."""
    checks = []
    for requirement in importlib.metadata.requires("cove") or []:
        if "extra ==" in requirement and not (dev and 'extra == "dev"' in requirement):
            continue
        name, minimum = _lower_bound(requirement)
        why = "a test and lint tool" if "extra ==" in requirement else "a library Cove uses"
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            checks.append(Check("install", name, FAIL, "Python package not installed", why,
                                INSTALL_FIX))
            continue
        if minimum and parse_version(version + ".0")[:len(minimum)] < minimum:
            checks.append(Check("install", name, FAIL, f"{version}, older than "
                                f"{'.'.join(map(str, minimum))}", why, INSTALL_FIX))
        else:
            checks.append(Check("install", name, PASS, f"Python package {version}", why))
    return checks


def network_backend_check(settings: ServerSettings) -> Check:
    """podman with Cove's containers.conf: the first thing that failed on a fresh machine."""
    from cove.adapters.engine import Engine

    why = "podman sets up every space's network with netavark"
    try:
        engine = Engine(settings.home / "engine")
        proc = engine.run("info", "--format", "{{.Host.NetworkBackend}}", check=False,
                          timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return Check("install", "podman network backend", FAIL, str(err), why, INSTALL_FIX)
    if proc.returncode != 0:
        error = (proc.stderr or proc.stdout).strip().splitlines()
        return Check("install", "podman network backend", FAIL,
                     error[-1][:300] if error else "podman info failed", why,
                     "apt-get install netavark aardvark-dns, or " + INSTALL_FIX)
    return Check("install", "podman network backend", PASS, proc.stdout.strip(), why)


def install_checks(settings: ServerSettings, scopes: tuple[str, ...] = SERVER_SCOPES,
                   path: str | None = None) -> list[Check]:
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda t: tool_check(t, path), tools(scopes)))
    found += python_checks(dev="tests" in scopes)
    if shutil.which("podman", path=path):
        found.append(network_backend_check(settings))
    return found


# -- the host -----------------------------------------------------------------------------

def cgroup_check(root: Path = Path("/sys/fs/cgroup")) -> list[Check]:
    why = "instances' and builds' memory, CPU and process limits are cgroup limits"
    v2 = root / "cgroup.controllers"
    if v2.exists() and not (root / "memory").exists():
        have = set(v2.read_text().split())
        lacking = sorted({"memory", "cpu", "pids"} - have)
        if lacking:
            return [Check("host", "cgroups", FAIL, f"cgroup v2 without {', '.join(lacking)}",
                          why, "enable the controllers in the root cgroup's subtree_control")]
        return [Check("host", "cgroups", PASS, "cgroup v2 with memory, cpu and pids", why)]
    lacking = [c for c in ("memory", "cpu", "pids") if not (root / c).is_dir()]
    if lacking:
        return [Check("host", "cgroups", FAIL, f"no {', '.join(lacking)} cgroup hierarchy",
                      why, "boot a kernel with these controllers mounted under /sys/fs/cgroup")]
    checks = [Check("host", "cgroups", PASS, "cgroup v1 with memory, cpu and pids", why)]
    swap = (root / "memory" / "memory.memsw.limit_in_bytes").exists()
    checks.append(Check(
        "host", "swap accounting", PASS if swap else WARN,
        "memory limits include swap" if swap else "memory limits do not cover swap",
        "without it an instance can exceed its memory size in swap",
        "boot with swapaccount=1 (or turn swap off)"))
    return checks


def kernel_checks() -> list[Check]:
    filesystems = Path("/proc/filesystems").read_text() if Path("/proc/filesystems").exists() \
        else ""
    status = Path("/proc/self/status").read_text() if Path("/proc/self/status").exists() else ""
    return [
        Check("host", "overlay filesystem", PASS if "overlay" in filesystems else WARN,
              "available" if "overlay" in filesystems else "not loaded",
              "podman's image store layers images with it",
              "modprobe overlay"),
        Check("host", "seccomp", PASS if "Seccomp:" in status else FAIL,
              "supported" if "Seccomp:" in status else "the kernel has no seccomp",
              "every instance and build step runs under the default seccomp profile",
              "use a kernel built with CONFIG_SECCOMP"),
    ]


def firewall_checks() -> list[Check]:
    checks = []
    for binary in ("iptables", "ip6tables"):
        why = "the guard that keeps instances off the host's services" + \
              (" over IPv6" if binary == "ip6tables" else "")
        where = shutil.which(binary)
        if where is None:
            checks.append(Check("host", binary, FAIL, "not found", why,
                                "apt-get install iptables"))
            continue
        proc = subprocess.run([where, "-w", "-S", "INPUT"], capture_output=True, text=True,
                              timeout=30)
        if proc.returncode != 0:
            checks.append(Check("host", binary, FAIL, proc.stderr.strip()[:200] or "failed",
                                why, "run Cove as root on a kernel with netfilter"))
        else:
            checks.append(Check("host", binary, PASS, "works (read the INPUT chain)",
                                why))
    return checks


def _port_owner(host: str, port: int) -> bool:
    """True when something listens on host:port."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def _cove_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return b'"ok"' in answer.read()
    except OSError:
        return False


def port_checks(settings: ServerSettings, starting: bool) -> list[Check]:
    """The API and router ports. Before a start they must be free (the router's may be held
    by Cove's own nginx, which outlives the server); otherwise a running Cove is fine."""
    why = "cove-server listens there"
    port = settings.api_port
    if not _port_owner("127.0.0.1", port):
        checks = [Check("host", "API port", PASS, f"{port} is free", why)]
    elif not starting and _cove_answers(port):
        checks = [Check("host", "API port", PASS, f"{port}: Cove is running there", why)]
    else:
        checks = [Check("host", "API port", FAIL, f"{port} is in use", why,
                        "stop what holds it (`make stop` if it is another Cove), or set "
                        "COVE_API_PORT")]
    router_host = "127.0.0.1" if settings.router_listen in ("0.0.0.0", "") else \
        settings.router_listen
    why = "the router serves every app there"
    if not _port_owner(router_host, settings.router_port):
        checks.append(Check("host", "router port", PASS, f"{settings.router_port} is free", why))
    elif running_pid(settings.home / "router"):
        checks.append(Check("host", "router port", PASS,
                            f"{settings.router_port} is held by Cove's own router", why))
    else:
        checks.append(Check("host", "router port", FAIL, f"{settings.router_port} is in use",
                            why, "stop what holds it, or set COVE_ROUTER_PORT"))
    return checks


def disk_check(name: str, path: Path, why: str) -> Check:
    probe = path
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    shown = f"{free / GIB:.1f} GiB free at {path}"
    if free < GIB:
        return Check("host", name, FAIL, shown, why, f"free space on {probe}")
    if free < 5 * GIB:
        return Check("host", name, WARN, shown, why, f"free space on {probe} (5 GiB or more)")
    return Check("host", name, PASS, shown, why)


def state_dir_check(home: Path) -> Check:
    why = "Cove keeps its database, logs, git repositories and router there"
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home):
            pass
    except OSError as err:
        return Check("host", "state directory", FAIL, f"{home}: {err.strerror}", why,
                     "make it writable, or point COVE_HOME elsewhere")
    return Check("host", "state directory", PASS, f"{home} is writable", why)


def host_checks(settings: ServerSettings, starting: bool = False) -> list[Check]:
    checks = [*cgroup_check(), *kernel_checks(), *firewall_checks(),
              *port_checks(settings, starting)]
    checks += [
        state_dir_check(settings.home),
        disk_check("disk for images", Path("/var/lib/containers/storage"),
                   "images, builds and their caches live in podman's store"),
        disk_check("disk for state", settings.home, "the database, logs and repositories"),
    ]
    return checks


# -- the platform -------------------------------------------------------------------------

def stack_checks(settings: ServerSettings) -> list[Check]:
    from cove.adapters.builder.stacks import Stack, stack_exists
    from cove.adapters.engine import Engine

    why = "buildpacks build on the build image and apps run on the run image"
    stack = Stack(settings.build_image, settings.run_image, settings.builder_image)
    if stack_exists(Engine(settings.home / "engine"), stack):
        return [Check("platform", "stacks", PASS, f"{stack.build} and {stack.run}", why)]
    return [Check("platform", "stacks", WARN, "not built: source deploys fail until they are",
                  why, "cove-server stacks build (a few minutes, once)")]


def database_checks(settings: ServerSettings) -> list[Check]:
    from cove.adapters.store.sql.store import schema_state

    why = "every app, release and member is recorded there"
    shown = re.sub(r"//([^:@/]+):[^@/]*@", r"//\1:***@", settings.database_url)
    try:
        current, head = schema_state(settings.database_url)
    except Exception as err:  # any driver error: say it, do not guess
        return [Check("platform", "database", FAIL, f"{shown}: {str(err).splitlines()[0]}",
                      why, "start the database or fix COVE_DATABASE_URL")]
    if current == head:
        return [Check("platform", "database", PASS, f"{shown} at schema {head}", why)]
    return [Check("platform", "database", WARN,
                  f"{shown} at schema {current or 'none'}, newest is {head}", why,
                  "cove-server migrates it when it starts")]


def pool_checks(settings: ServerSettings) -> list[Check]:
    from cove.bootstrap import load_pools
    from cove.domain.errors import CoveError
    from cove.ports.pool import SelfChecking

    if settings.pools_file is None:
        return [Check("platform", "pools", PASS, "only the local pool (no COVE_POOLS)",
                      "apps run on this machine")]
    try:
        pools = load_pools(settings)
    except (CoveError, OSError, KeyError, ValueError) as err:
        return [Check("platform", "pools file", FAIL, f"{settings.pools_file}: {err}",
                      "Cove cannot reach its Kubernetes pools without it",
                      "fix the pools file")]
    checks = []
    for pool in pools.values():
        if isinstance(pool, SelfChecking):
            checks += pool.preflight()
        else:
            checks.append(Check("platform", f"pool {pool.name}", WARN, "cannot check itself",
                                "its readiness is unknown", "check the pool by hand"))
    return checks


def doctor(settings: ServerSettings, groups: tuple[str, ...] = GROUPS,
           scopes: tuple[str, ...] = SERVER_SCOPES, starting: bool = False) -> list[Check]:
    checks: list[Check] = []
    if "install" in groups:
        checks += install_checks(settings, scopes)
    if "host" in groups:
        checks += host_checks(settings, starting)
    if "platform" in groups:
        checks += stack_checks(settings) + database_checks(settings) + pool_checks(settings)
    return checks
