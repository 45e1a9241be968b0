"""What every use case needs, wired once by bootstrap."""

from __future__ import annotations

import datetime as dt
import threading
from collections import defaultdict
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cove.domain.errors import Unsupported
from cove.domain.template import SpaceTemplate
from cove.ports.auth import PasswordHasher
from cove.ports.builder import Builder
from cove.ports.pool import Pool
from cove.ports.registry import ImageResolver
from cove.ports.repos import Repos
from cove.ports.runtime import Logs
from cove.ports.store import Store
from cove.services.quota import QuotaLedger
from cove.services.throttle import LoginThrottle


def space_lock(space_id: int) -> tuple[str, int]:
    """The key of a space's lock (apps are keyed by their id)."""
    return ("space", space_id)


class AppLocks:
    """One lock per app, and one per space: deploys, scales, member changes and the
    reconciler never act on an app, or on a space's own objects, at once."""

    def __init__(self) -> None:
        self._locks: defaultdict[Hashable, threading.RLock] = defaultdict(threading.RLock)
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, app_id: Hashable) -> Iterator[None]:
        with self._guard:
            lock = self._locks[app_id]
        with lock:
            yield

    def try_acquire(self, app_id: Hashable) -> bool:
        """Take an app's lock only if nobody holds it (a deploy in progress is left alone)."""
        with self._guard:
            lock = self._locks[app_id]
        return lock.acquire(blocking=False)

    def release(self, app_id: Hashable) -> None:
        self._locks[app_id].release()


@dataclass
class Settings:
    base_domain: str = "localhost"
    router_port: int = 8080
    signup_open: bool = True
    max_spaces_per_user: int = 5
    stop_grace_seconds: int = 10
    api_url: str = "http://127.0.0.1:8081"  # the API itself, for git push hooks
    token_lifetime: dt.timedelta = dt.timedelta(days=30)  # a login's API token lasts this


@dataclass
class Context:
    store: Store
    logs: Logs  # Cove's own events about each app
    resolver: ImageResolver
    hasher: PasswordHasher
    template: SpaceTemplate
    # Every backend by name: "local" (this machine) and those of the pools file.
    pools: dict[str, Pool]
    settings: Settings = field(default_factory=Settings)
    locks: AppLocks = field(default_factory=AppLocks)
    quota: QuotaLedger = field(default_factory=QuotaLedger)
    # New apps' addresses (<app>-<space>) are checked for clashes one at a time.
    names_lock: threading.Lock = field(default_factory=threading.Lock)
    logins: LoginThrottle = field(default_factory=LoginThrottle)
    builder: Builder | None = None  # builds images from uploaded source
    repos: Repos | None = None  # one git repository per app

    def require_builder(self) -> Builder:
        if self.builder is None:
            raise Unsupported("this Cove has no builder configured")
        return self.builder

    def app_hostname(self, app: str, space: str) -> str:
        return f"{app}-{space}.{self.settings.base_domain}"

    def app_url(self, app: str, space: str) -> str:
        port = "" if self.settings.router_port == 80 else f":{self.settings.router_port}"
        return f"http://{self.app_hostname(app, space)}{port}/"
