"""Settings from environment variables (COVE_*), with the embedded defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cove.domain.contract import BUILD_IMAGE, BUILDER_IMAGE, RUN_IMAGE

DEFAULT_TEMPLATE = Path(__file__).parent / "data" / "space-template.yaml"


def _home() -> Path:
    return Path(os.environ.get("COVE_HOME") or Path.home() / ".local" / "share" / "cove")


@dataclass
class ServerSettings:
    home: Path = field(default_factory=_home)
    database_url: str = ""
    base_domain: str = "localhost"
    router_listen: str = "127.0.0.1"
    router_port: int = 8080
    api_port: int = 8081
    space_template: Path = DEFAULT_TEMPLATE
    signup_open: bool = True
    insecure_registries: tuple[str, ...] = ("localhost", "127.0.0.1")
    # Registries on this machine's own addresses tenants may pull from (host:port); any
    # other loopback or link-local registry is refused. `make run`'s registry by default.
    local_registries: tuple[str, ...] = ("127.0.0.1:5000", "localhost:5000")
    pools_file: Path | None = None
    reconcile_interval: float = 2.0
    pool_reconcile_interval: float = 30.0
    drain_seconds: float = 1.0
    build_image: str = BUILD_IMAGE
    run_image: str = RUN_IMAGE
    builder_image: str = BUILDER_IMAGE
    build_bases: Path | None = None  # base images for builds, shared by installations
    debian_mirror: str = "http://deb.debian.org/debian"
    token_days: float = 30.0  # how long a login's API token lasts
    # The builds' dependency cache (PyPI, npm, Go modules) on the builds' bridge; 0: none.
    dependency_cache_port: int = 3141
    dependency_cache_mb: int = 10240  # on disk; the least recently used files go past it

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ServerSettings:
        e = os.environ if env is None else env
        home = Path(e["COVE_HOME"]) if e.get("COVE_HOME") else _home()
        return cls(
            home=home,
            database_url=e.get("COVE_DATABASE_URL") or f"sqlite:///{home / 'cove.db'}",
            base_domain=e.get("COVE_BASE_DOMAIN", "localhost"),
            router_listen=e.get("COVE_ROUTER_LISTEN", "127.0.0.1"),
            router_port=int(e.get("COVE_ROUTER_PORT", "8080")),
            api_port=int(e.get("COVE_API_PORT", "8081")),
            space_template=Path(e.get("COVE_SPACE_TEMPLATE") or DEFAULT_TEMPLATE),
            signup_open=e.get("COVE_SIGNUP", "open") != "closed",
            insecure_registries=tuple(
                h.strip() for h in e.get("COVE_INSECURE_REGISTRIES", "localhost,127.0.0.1")
                .split(",") if h.strip()),
            local_registries=tuple(
                h.strip() for h in e.get("COVE_LOCAL_REGISTRIES", "127.0.0.1:5000,localhost:5000")
                .split(",") if h.strip()),
            pools_file=Path(e["COVE_POOLS"]) if e.get("COVE_POOLS") else None,
            reconcile_interval=float(e.get("COVE_RECONCILE_INTERVAL", "2")),
            drain_seconds=float(e.get("COVE_DRAIN_SECONDS", "1")),
            pool_reconcile_interval=float(e.get("COVE_POOL_RECONCILE_INTERVAL", "30")),
            build_image=e.get("COVE_BUILD_IMAGE") or cls.build_image,
            run_image=e.get("COVE_RUN_IMAGE") or cls.run_image,
            builder_image=e.get("COVE_BUILDER_IMAGE") or cls.builder_image,
            build_bases=Path(e["COVE_BUILD_BASES"]) if e.get("COVE_BUILD_BASES") else None,
            debian_mirror=e.get("COVE_DEBIAN_MIRROR") or cls.debian_mirror,
            token_days=float(e.get("COVE_TOKEN_DAYS", "30")),
            dependency_cache_port=int(e.get("COVE_DEPENDENCY_CACHE_PORT", "3141")),
            dependency_cache_mb=int(e.get("COVE_DEPENDENCY_CACHE_MB", "10240")),
        )
