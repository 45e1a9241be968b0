"""The local Runtime: podman containers, one isolated bridge network per space."""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cove.adapters.engine import Engine, EngineError
from cove.adapters.runtime.local.firewall import HostFirewalls
from cove.adapters.runtime.local.spec import (
    LABEL,
    container_name,
    env_file_text,
    network_name,
    run_args,
)
from cove.adapters.runtime.logs import FileLogs, parse_time
from cove.domain.checks import FAIL, PASS, WARN, Check
from cove.domain.contract import PORT
from cove.domain.errors import DeployFailed
from cove.ports.runtime import Instance, InstanceSpec, Posture

# No higher than the engine's own hard limit: without CAP_SYS_RESOURCE it cannot raise it.
NPROC = min(32768, resource.getrlimit(resource.RLIMIT_NPROC)[1])


LAST_LINES = 5  # of an instance's output, when it exits before it answered


class PodmanRuntime:
    def __init__(self, engine: Engine, logs: FileLogs, install: str,
                 grace_seconds: int = 10) -> None:
        self.engine = engine
        self.install = install
        self.firewall = HostFirewalls(install)
        self.logs = logs
        self.grace_seconds = grace_seconds
        # Networks made or found by this process, with their bridges: a start need not ask
        # the engine again (two commands, ~0.3 s). One removed behind Cove's back is made
        # again when a start fails on it. The host firewall's guard is checked every time
        # (a few iptables calls): a flushed rule comes back with the next start.
        self._ensured: dict[str, str] = {}
        self._networks = threading.Lock()  # a rollout starts its instances at once
        # A running instance's address, by container id and start time (unix seconds, as
        # listed): an address does not change while a container runs.
        self._addresses: dict[tuple[str, Any], str | None] = {}
        self._cache = threading.Lock()

    # -- spaces -----------------------------------------------------------------------------

    def ensure_space(self, space: str) -> None:
        name = network_name(self.install, space)
        with self._networks:
            if name in self._ensured:
                self.firewall.guard(self._ensured[name])
            else:
                self._ensured[name] = self._ensure_network(name, f"cove.space={space}")

    def build_network(self) -> str:
        """The bridge builds' RUN steps use: like a space's, cut off from the spaces and
        from the host's own services (DNS aside), with the internet for package installs.
        Its name cannot be a space's (space names have no "--")."""
        name = network_name(self.install, "-builds")
        self._ensure_network(name, "cove.role=builds")
        return name

    def build_gateway(self) -> str:
        """The builds' bridge's address on the host."""
        gateways = self.engine.run("network", "inspect", "--format",
                                   "{{range .Subnets}}{{.Gateway}} {{end}}",
                                   self.build_network()).stdout.split()
        return next(g for g in gateways if ":" not in g)

    def open_to_builds(self, port: int) -> None:
        """Let builds alone reach `port` at the builds' bridge's address (the dependency
        cache listens there)."""
        name = self.build_network()
        self.firewall.each[0].allow(self._interface(name), self.build_gateway(), port)

    def _ensure_network(self, name: str, label: str) -> str:
        """Make the network if it is missing and guard its bridge; the bridge's name."""
        if self.engine.run("network", "exists", name, check=False).returncode != 0:
            # isolate=true: netavark drops traffic between isolated bridges, so spaces
            # cannot reach each other; the host (the router) still reaches every space.
            self.engine.run("network", "create", "--opt", "isolate=true",
                            "--label", f"{LABEL}={self.install}", "--label", label, name)
        interface = self._interface(name)
        self.firewall.guard(interface)
        return interface

    def _interface(self, network: str) -> str:
        return self.engine.run("network", "inspect", "--format", "{{.NetworkInterface}}",
                               network).stdout.strip()

    def remove_space(self, space: str) -> None:
        name = network_name(self.install, space)
        self._ensured.pop(name, None)
        if self.engine.run("network", "exists", name, check=False).returncode == 0:
            self.firewall.release(self._interface(name))
        self.engine.run("network", "rm", "--force", name, check=False)

    def remove_everything(self, grace_seconds: int = 5) -> int:
        """Stop every instance and remove every network of this installation."""
        instances = self.instances()
        self._ensured.clear()
        for inst in instances:
            self.stop(inst.name, grace_seconds)
        nets = self.engine.run("network", "ls", "--format", "{{.Name}}", "--filter",
                               f"label={LABEL}={self.install}").stdout.split()
        for net in nets:
            self.firewall.release(self._interface(net))
        if nets:
            self.engine.run("network", "rm", "--force", *nets, check=False)
        self.firewall.remove()
        return len(instances)

    # -- instances --------------------------------------------------------------------------

    @contextmanager
    def _run_args(self, spec: InstanceSpec, log_path: Path) -> Iterator[list[str]]:
        """`podman run` arguments, with the environment in a private file while they live."""
        fd, env_path = tempfile.mkstemp(prefix="cove-env-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(env_file_text(spec.env))
            yield run_args(self.install, spec, Path(env_path), log_path, self.grace_seconds,
                           nproc=NPROC)
        finally:
            os.unlink(env_path)

    def start(self, spec: InstanceSpec) -> Instance:
        self.ensure_space(spec.space)
        log_path = self.logs.instance_path(spec.app_id, spec.process, spec.index, spec.release)
        container = container_name(self.install, spec.name)
        with self._run_args(spec, log_path) as args:
            # A leftover container of the same name (crashed, or from a failed start) is
            # replaced.
            args = [args[0], "--replace", *args[1:]]
            for attempt in (1, 2):
                try:
                    self.engine.run(*args)
                    break
                except EngineError as err:
                    self.engine.run("rm", "--force", "--ignore", container, check=False)
                    if attempt == 2:
                        raise DeployFailed(f"could not start {spec.process}.{spec.index}: "
                                           f"{err.stderr.strip()}") from err
                    # Its network may have been removed behind Cove's back: check, then
                    # try once more.
                    with self._networks:
                        self._ensured.pop(network_name(self.install, spec.space), None)
                    self.ensure_space(spec.space)
        found = self._inspect([container])
        if not found:
            raise DeployFailed(f"{spec.process}.{spec.index} vanished right after it started")
        return found[0]

    def run_once(self, spec: InstanceSpec, timeout: float) -> tuple[int, str]:
        """A one-off container with the same hardening as an instance, removed afterwards."""
        self.ensure_space(spec.space)
        once = container_name(self.install, f"{spec.name}-once")
        log_path = self.logs.instance_path(spec.app_id, spec.process, spec.index, spec.release)
        with self._run_args(spec, log_path) as args:
            args[args.index("--detach")] = "--rm"
            args[args.index(container_name(self.install, spec.name))] = once
            try:
                proc = self.engine.run(*args, check=False, timeout=timeout)
            except subprocess.TimeoutExpired:
                self.engine.run("rm", "--force", once, check=False)
                return 124, f"timed out after {timeout:.0f}s"
        output = log_path.read_text(errors="replace") if log_path.exists() else ""
        text = "\n".join(line.split(" ", 3)[-1] for line in output.splitlines())
        return proc.returncode, text + proc.stderr

    def stop(self, name: str, grace_seconds: int = 10) -> None:
        self.engine.run("rm", "--force", "--ignore", "--time", str(grace_seconds),
                        container_name(self.install, name), check=False,
                        timeout=grace_seconds + 60)

    def exited(self, name: str) -> str | None:
        found = self._inspect_raw([container_name(self.install, name)])
        if not found:
            return "it is gone (removed while starting)"
        inst = _instance(found[0])
        if inst.state in ("running", "created", "configured", "initialized"):
            return None
        path = self.logs.instance_path(inst.app_id, inst.process, inst.index, inst.release)
        lines = path.read_text(errors="replace").splitlines()[-LAST_LINES:] \
            if path.exists() else []
        said = "; ".join(line.split(" ", 3)[-1] for line in lines)
        return (f"it exited with code {inst.exit_code}" +
                (f"; its last lines: {said}" if said else " without writing anything"))

    def instances(self, app_id: int | None = None) -> list[Instance]:
        """One listing; only instances started since the last one are inspected (for their
        address: the listing has everything else). A pass every few seconds, and each
        change, cost two engine commands each before."""
        args = ["ps", "--all", "--format", "json", "--filter", f"label={LABEL}={self.install}"]
        if app_id is not None:
            args += ["--filter", f"label=cove.app_id={app_id}"]
        listed: list[dict[str, Any]] = json.loads(self.engine.run(*args).stdout or "[]")
        keys = {e["Id"]: (e["Id"], e.get("StartedAt")) for e in listed}
        with self._cache:
            known = {k: self._addresses[k] for k in keys.values() if k in self._addresses}
        unknown = [e["Id"] for e in listed
                   if e.get("State") == "running" and keys[e["Id"]] not in known]
        for data in self._inspect_raw(unknown) if unknown else []:
            if data["Id"] in keys:
                known[keys[data["Id"]]] = _instance(data).address
        with self._cache:
            if app_id is None:  # a listing of all: forget the instances that are gone
                self._addresses = known
            else:
                self._addresses.update(known)
        return [_listed(e, known.get(keys[e["Id"]])) for e in listed]

    def _inspect(self, ids: list[str]) -> list[Instance]:
        return [_instance(c) for c in self._inspect_raw(ids)]

    def _inspect_raw(self, ids: list[str]) -> list[dict[str, Any]]:
        proc = self.engine.run("container", "inspect", "--format", "json", *ids, check=False)
        if proc.returncode != 0 and not proc.stdout.strip():
            return []  # removed between ps and inspect
        found: list[dict[str, Any]] = json.loads(proc.stdout or "[]")
        return found

    # -- what doctor reads back -------------------------------------------------------------

    def posture(self, app_id: int) -> list[Posture]:
        """The running instances as the kernel sees them: the engine's record for limits and
        the root filesystem, and the process's own status for uid, capabilities,
        no_new_privs and seccomp."""
        ids = self.engine.run("ps", "--quiet", "--no-trunc", "--filter",
                              f"label={LABEL}={self.install}", "--filter",
                              f"label=cove.app_id={app_id}").stdout.split()
        return [_posture(data) for data in self._inspect_raw(ids)] if ids else []

    def space_checks(self, space: str) -> list[Check]:
        name = network_name(self.install, space)
        why = "other spaces and the host's services must not reach this space's instances"
        if self.engine.run("network", "exists", name, check=False).returncode != 0:
            return [Check("space", "network isolation", WARN, "the space has no network yet "
                          "(made with its first instance)", why, "deploy an app")]
        info = self.engine.json("network", "inspect", name)[0]
        isolated = (info.get("options") or {}).get("isolate") == "true"
        guarded = self.firewall.guards(info.get("network_interface", ""))
        if isolated and guarded:
            return [Check("space", "network isolation", PASS, f"own bridge {name}, isolated "
                          "from other spaces, host services firewalled", why)]
        missing = [what for what, ok in (("isolation from other spaces", isolated),
                                         ("the host firewall guard", guarded)) if not ok]
        return [Check("space", "network isolation", FAIL, f"{name} lacks "
                      f"{' and '.join(missing)}", why,
                      "restart the space's instances (`cove deploy` or `cove config set`): "
                      "starting an instance restores both")]


def _proc_status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _posture(data: dict[str, Any]) -> Posture:
    host, labels = data.get("HostConfig") or {}, data["Config"].get("Labels") or {}
    status = _proc_status(int(data["State"].get("Pid") or 0))
    uid = int(status["Uid"].split()[1]) if status.get("Uid") else None
    nano = host.get("NanoCpus") or 0
    quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 0
    cpu = nano // 1_000_000 if nano else (quota * 1000 // period if quota and period else None)
    return Posture(
        process=labels.get("cove.process", ""),
        uid=uid, non_root=uid is not None and uid != 0,
        read_only_root=bool(host.get("ReadonlyRootfs")),
        no_capabilities=int(status.get("CapEff", "1"), 16) == 0,
        no_new_privileges=status.get("NoNewPrivs", "0").strip() == "1",
        seccomp=status.get("Seccomp", "0").strip() == "2",  # 2: a filter is applied
        memory_limit_mb=(host.get("Memory") or 0) // 2**20 or None,
        cpu_limit_millis=cpu or None,
        image=data.get("ImageName") or data.get("Image", ""),
        health_probe=False, instance=labels.get("cove.instance", data.get("Name", "")))


def _listed(entry: dict[str, Any], address: str | None) -> Instance:
    """An instance from `podman ps --format json` (no addresses there: `address`)."""
    started = entry.get("StartedAt") or 0
    return _labelled(entry.get("Labels") or {}, (entry.get("Names") or [""])[0],
                     entry.get("State", "unknown"), address, entry.get("ExitCode"),
                     dt.datetime.fromtimestamp(started, dt.UTC) if started > 0 else None)


def _instance(data: dict[str, Any]) -> Instance:
    """An instance from `podman container inspect`."""
    state = data["State"]
    address = None
    for net in (data.get("NetworkSettings", {}).get("Networks") or {}).values():
        if net.get("IPAddress"):
            address = f"{net['IPAddress']}:{PORT}"
    started = None
    if state.get("StartedAt") and not state["StartedAt"].startswith("0001"):
        started = parse_time(state["StartedAt"])
    return _labelled(data["Config"]["Labels"] or {}, data["Name"],
                     state.get("Status", "unknown"), address, state.get("ExitCode"), started)


def _labelled(labels: dict[str, str], name: str, state: str, address: str | None,
              exit_code: int | None, started: dt.datetime | None) -> Instance:
    """What Cove's labels say the container is, in the state the engine reports."""
    running = state == "running"
    return Instance(
        name=labels.get("cove.instance", name),
        app_id=int(labels.get("cove.app_id", "0")),
        space=labels.get("cove.space", ""),
        app=labels.get("cove.app", ""),
        process=labels.get("cove.process", ""),
        index=int(labels.get("cove.index", "0")),
        release=int(labels.get("cove.release", "0")),
        state=state,
        address=address if running else None,
        exit_code=None if running else exit_code,
        started_at=started,
        fingerprint=labels.get("cove.fingerprint", ""),
        labels=labels,
    )
