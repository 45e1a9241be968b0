"""The one place that reads settings and wires adapters to services."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from lightkube import Client, KubeConfig

from cove.adapters.builder.buildah import BuildahBuilder
from cove.adapters.builder.buildpacks import default_buildpacks
from cove.adapters.builder.stacks import Stack
from cove.adapters.depcache.server import DependencyCache, build_env
from cove.adapters.engine import Engine
from cove.adapters.git.repos import GitRepos
from cove.adapters.health import HttpHealthCheck
from cove.adapters.passwords import Argon2Hasher
from cove.adapters.registry.images import RegistryResolver
from cove.adapters.router.nginx.process import NginxRouter
from cove.adapters.router.nginx.render import RouterConfig
from cove.adapters.runtime.kubernetes.cluster import KubernetesCluster
from cove.adapters.runtime.kubernetes.render import Gateway
from cove.adapters.runtime.local.podman import PodmanRuntime
from cove.adapters.runtime.local.pool import LocalPool
from cove.adapters.runtime.logs import FileLogs
from cove.adapters.store.sql.store import SqlStore
from cove.domain.errors import Invalid
from cove.domain.template import SpaceTemplate, parse_template
from cove.ports.pool import Pool
from cove.ports.registry import Destination
from cove.services.context import Context, Settings
from cove.services.pools import LOCAL
from cove.services.reconciler import Reconciler
from cove.settings import ServerSettings

log = logging.getLogger(__name__)


def load_template(settings: ServerSettings) -> SpaceTemplate:
    with settings.space_template.open() as handle:
        return parse_template(yaml.safe_load(handle))


def install_id(home: Path) -> str:
    """A short random id that tells this installation's containers from any other's."""
    path = home / "install-id"
    if not path.exists():
        path.write_text(secrets.token_hex(3) + "\n")
    return path.read_text().strip()


def load_pools(settings: ServerSettings) -> dict[str, Pool]:
    """Declarative pools from the operator's pools file (COVE_POOLS), by name."""
    if settings.pools_file is None:
        return {}
    data = yaml.safe_load(settings.pools_file.read_text()) or {}
    pools: dict[str, Pool] = {}
    for name, conf in (data.get("pools") or {}).items():
        if name == LOCAL:
            raise Invalid("pools file: 'local' is the embedded pool and cannot be redefined")
        driver = conf.get("driver")
        if driver != "kubernetes":
            raise Invalid(f"pools file: pool {name!r} has unknown driver {driver!r} "
                          "(use kubernetes)")
        config = KubeConfig.from_file(conf["kubeconfig"])
        client = Client(config.get(context_name=conf.get("context")),
                        field_manager="cove")
        gateway = Gateway(**conf["gateway"]) if conf.get("gateway") else None
        router = conf.get("router_namespace") or (gateway.namespace if gateway
                                                  else "ingress-nginx")
        pools[name] = KubernetesCluster(
            client, name=name, router_namespace=router,
            ingress_class=conf.get("ingress_class", "nginx"),
            base_domain=conf.get("base_domain"), gateway=gateway,
            registry=_destination(name, conf.get("registry")),
            reconcile_interval=settings.pool_reconcile_interval,
            user_prefix=_user_prefix(name, conf.get("user_prefix", "cove:")))
    return pools


def _user_prefix(pool: str, prefix: object) -> str:
    """Members are the cluster's users `<prefix><name>`: without a prefix a member's
    binding names whoever else is called the same, and `system:` names are the cluster's
    own identities (its nodes, controllers and service accounts)."""
    if not isinstance(prefix, str) or not prefix:
        raise Invalid(f"pools file: pool {pool!r}: user_prefix must not be empty (members "
                      "would be bound as bare names, anyone's); the default is 'cove:'")
    if prefix.startswith("system:"):
        raise Invalid(f"pools file: pool {pool!r}: user_prefix must not start with "
                      "'system:', reserved for the cluster's own identities")
    return prefix


def _destination(pool: str, conf: object) -> Destination | None:
    """`registry: host:port` or `{push: host:port, pull: name-the-nodes-use}`."""
    if conf is None:
        return None
    if isinstance(conf, str):
        conf = {"push": conf}
    if not isinstance(conf, dict) or not isinstance(conf.get("push"), str):
        raise Invalid(f"pools file: pool {pool!r}: registry must be host:port or a mapping "
                      "with push (and optionally pull)")
    push = conf["push"].strip("/")
    return Destination(push=push, pull=str(conf.get("pull") or push).strip("/"))


@dataclass
class Platform:
    ctx: Context
    reconciler: Reconciler
    router: NginxRouter
    runtime: PodmanRuntime
    local: LocalPool
    store: SqlStore
    settings: ServerSettings


def dependency_env(runtime: PodmanRuntime, root: Path, port: int,
                   max_mb: int) -> Callable[[], dict[str, str]]:
    """The dependency cache's addresses for build stages. The cache starts with the first
    build that asks (so only a server that builds runs one), on the builds' bridge, open
    to builds alone. Without it (port 0, or it could not start) builds fetch directly."""
    base: list[str] = []  # where the cache listens, once it does
    env: dict[str, str] = {}
    lock = threading.Lock()

    def addresses() -> dict[str, str]:
        if not port:
            return {}
        with lock:
            if not env:
                try:
                    if not base:
                        base.append(DependencyCache(root, max_bytes=max_mb << 20).start(
                            runtime.build_gateway(), port))
                    runtime.open_to_builds(port)  # (once it listens: nothing else there)
                    env.update(build_env(base[0]))
                except Exception:  # a build without the cache is slower, not broken
                    log.exception("the dependency cache did not start (tried again at the "
                                  "next build)")
            return dict(env)

    return addresses


def build(settings: ServerSettings) -> Platform:
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    store = SqlStore(settings.database_url)
    engine = Engine(home / "engine")
    stack = Stack(settings.build_image, settings.run_image, settings.builder_image)
    logs = FileLogs(home / "logs")
    runtime = PodmanRuntime(engine, logs, install_id(home))
    listen = f"{settings.router_listen}:{settings.router_port}"
    router = NginxRouter(RouterConfig(
        prefix=str(home / "router"), listen=listen,
        api_backend=f"127.0.0.1:{settings.api_port}",
        api_hosts=tuple(dict.fromkeys((settings.base_domain, f"cove.{settings.base_domain}",
                                       "localhost", "127.0.0.1")))))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # health probes are not news
    resolver = RegistryResolver(engine, settings.insecure_registries,
                                local=settings.local_registries)
    local = LocalPool(runtime, router, HttpHealthCheck(), logs,
                      drain_seconds=settings.drain_seconds)
    ctx = Context(
        store=store, logs=logs, resolver=resolver, hasher=Argon2Hasher(),
        template=load_template(settings),
        pools={LOCAL: local, **load_pools(settings)},
        builder=BuildahBuilder(engine, default_buildpacks(
                                   home / "stacks", stack, dependency_env(
                                       runtime, home / "dependencies",
                                       settings.dependency_cache_port,
                                       settings.dependency_cache_mb)),
                               stack=stack, mirror=settings.debian_mirror,
                               network=runtime.build_network, resolve=resolver.resolve,
                               bases=settings.build_bases),
        repos=GitRepos(home / "git"),
        settings=Settings(base_domain=settings.base_domain, router_port=settings.router_port,
                          signup_open=settings.signup_open,
                          api_url=f"http://127.0.0.1:{settings.api_port}",
                          token_lifetime=dt.timedelta(days=settings.token_days)))
    return Platform(ctx, Reconciler(ctx), router, runtime, local, store, settings)
