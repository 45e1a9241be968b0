from __future__ import annotations

from dataclasses import dataclass

import pytest
import yaml

from cove.adapters.passwords import Argon2Hasher
from cove.adapters.runtime.local.pool import LocalPool
from cove.adapters.store.sql.store import SqlStore
from cove.domain.models import User
from cove.domain.template import parse_template
from cove.services import accounts
from cove.services.context import Context, Settings
from cove.services.reconciler import Reconciler
from cove.settings import DEFAULT_TEMPLATE
from tests.support.fakes import FakeHealth, FakeLogs, FakeResolver, FakeRouter, FakeRuntime

IMAGE = "registry.test/hello:1"
DIGEST = "registry.test/hello@sha256:" + "a" * 64
IMAGE2 = "registry.test/hello:2"
DIGEST2 = "registry.test/hello@sha256:" + "b" * 64


@dataclass
class World:
    ctx: Context
    local: LocalPool
    runtime: FakeRuntime
    router: FakeRouter
    health: FakeHealth
    logs: FakeLogs
    reconciler: Reconciler
    clock: list[float]

    def user(self, name: str, admin: bool = False) -> User:
        return accounts.signup(self.ctx, name, "password123", is_admin=admin)[0]


@pytest.fixture
def world() -> World:
    with DEFAULT_TEMPLATE.open() as handle:
        template = parse_template(yaml.safe_load(handle))
    runtime, router, health, logs = FakeRuntime(), FakeRouter(), FakeHealth(), FakeLogs()
    clock = [1000.0]
    local = LocalPool(runtime, router, health, logs, drain_seconds=0, clock=lambda: clock[0],
                      later=lambda work: work())  # old instances retire before deploy returns
    ctx = Context(store=SqlStore("sqlite:///:memory:"), logs=logs,
                  resolver=FakeResolver({IMAGE: DIGEST, IMAGE2: DIGEST2}),
                  hasher=Argon2Hasher(fast=True), template=template, pools={"local": local},
                  settings=Settings())
    return World(ctx, local, runtime, router, health, logs, Reconciler(ctx, lambda: clock[0]),
                 clock)
