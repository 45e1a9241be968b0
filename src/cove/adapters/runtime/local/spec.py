"""Pure rendering of an InstanceSpec into a podman command line (snapshot-tested)."""

from __future__ import annotations

from pathlib import Path

from cove.ports.runtime import InstanceSpec

LABEL = "cove.install"  # which Cove installation owns a container or network


def network_name(install: str, space: str) -> str:
    return f"cove-{install}-{space}"


def container_name(install: str, instance: str) -> str:
    return f"cove-{install}-{instance}"


def labels(install: str, spec: InstanceSpec) -> dict[str, str]:
    return {
        LABEL: install,
        "cove.instance": spec.name,
        "cove.app_id": str(spec.app_id),
        "cove.space": spec.space,
        "cove.app": spec.app,
        "cove.process": spec.process,
        "cove.index": str(spec.index),
        "cove.release": str(spec.release),
        "cove.fingerprint": spec.fingerprint,
        "app.kubernetes.io/name": spec.app,
        "app.kubernetes.io/instance": f"{spec.app}-{spec.space}",
        "app.kubernetes.io/component": spec.process,
        "app.kubernetes.io/version": f"v{spec.release}",
        "app.kubernetes.io/managed-by": "cove",
    }


def run_args(install: str, spec: InstanceSpec, env_file: Path, log_path: Path,
             grace_seconds: int = 10, log_max_bytes: int = 1_000_000,
             nproc: int = 32768) -> list[str]:
    """`podman run` arguments matching Kubernetes Pod Security "restricted"."""
    args = [
        "run", "--detach", "--pull=never",
        "--name", container_name(install, spec.name),
        "--hostname", f"{spec.app}-{spec.process}-{spec.index}",
        "--network", network_name(install, spec.space),
        # restricted profile: non-root, no capabilities, no privilege gain, default seccomp
        "--user", f"{spec.run_as_uid}:{spec.run_as_uid}",
        "--cap-drop=all",
        "--security-opt", "no-new-privileges",
        "--read-only",
        "--tmpfs", f"/tmp:rw,nosuid,nodev,size={spec.tmp_size_mb}m,mode=1777",
        # an init as PID 1 reaps zombies and forwards SIGTERM
        "--init",
        "--memory", f"{spec.memory_mb}m",
        "--memory-swap", f"{spec.memory_mb}m",
        "--cpus", f"{spec.cpu_millis / 1000:g}",
        "--pids-limit", str(spec.pids),
        "--ulimit", "nofile=4096:4096",
        # RLIMIT_NPROC counts every process of a uid on the host, and all instances share
        # one uid: keep it out of the way; the pids cgroup limits each instance instead.
        "--ulimit", f"nproc={nproc}:{nproc}",
        "--stop-timeout", str(grace_seconds),
        "--log-driver", "k8s-file",
        "--log-opt", f"path={log_path}",
        "--log-opt", f"max-size={log_max_bytes}",
        "--env-file", str(env_file),
    ]
    for key, value in sorted(labels(install, spec).items()):
        args += ["--label", f"{key}={value}"]
    args.append(spec.image)
    if spec.command:
        args += spec.command
    return args


def env_file_text(env: dict[str, str]) -> str:
    # podman's env-file is line based: a newline in a value cannot be represented.
    return "".join(f"{k}={v.replace(chr(10), ' ')}\n" for k, v in sorted(env.items()))
