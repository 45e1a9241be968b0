"""The store contract, run against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from cove.adapters.store.sql.store import SqlStore
from cove.domain.errors import Conflict
from cove.domain.models import App, Process, Release, now
from cove.domain.roles import Role
from tests.support.services import Postgres

DAY = dt.timedelta(days=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[SqlStore]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        s = SqlStore(f"sqlite:///{tmp_path / 'cove.db'}")
        yield s
        s.close()
        return
    pg: Postgres = request.getfixturevalue("postgres")
    name = "t" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(pg.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    s = SqlStore(pg.url.rsplit("/", 1)[0] + f"/{name}")
    yield s
    s.close()
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE {name}"))
    admin.dispose()


def test_users_tokens_and_memberships(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        alice = uow.users.add("alice", "hash")
        space = uow.spaces.add("alice", alice.id, {"quota": {}})
        uow.memberships.set(space.id, alice.id, Role.ADMIN)
        uow.tokens.add(alice.id, "f" * 64, "cli", now() + DAY)
        uow.commit()
    with store.unit_of_work() as uow:
        user = uow.tokens.user_for("f" * 64, now(), DAY)
        assert user is not None and user.name == "alice" and user.created_at.tzinfo
        assert [(s.name, r) for s, r in uow.memberships.of_user(alice.id)] == [
            ("alice", Role.ADMIN)]
        uow.memberships.set(space.id, alice.id, Role.VIEWER)
        assert uow.memberships.role(space.id, alice.id) is Role.VIEWER
        uow.tokens.delete("f" * 64)
        assert uow.tokens.user_for("f" * 64, now(), DAY) is None


def test_tokens_expire_are_listed_and_revoked_by_their_owner_only(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        alice, bob = uow.users.add("alice", "hash"), uow.users.add("bob", "hash")
        uow.tokens.add(alice.id, "a" * 64, "laptop", now() + DAY)
        uow.tokens.add(alice.id, "b" * 64, "old", now() - DAY)
        uow.tokens.add(bob.id, "c" * 64, "bob's", now() + DAY)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.tokens.user_for("b" * 64, now(), DAY) is None  # expired
        assert uow.tokens.user_for("a" * 64, now() + 2 * DAY, DAY) is None  # later on
        mine = uow.tokens.of_user(alice.id)
        assert [t.description for t in mine] == ["laptop", "old"]
        theirs = uow.tokens.of_user(bob.id)[0].id
        assert not uow.tokens.delete_id(alice.id, theirs)  # not alice's to end
        assert uow.tokens.delete_id(alice.id, mine[1].id)
        assert uow.tokens.delete_others(alice.id, "a" * 64) == 0
        uow.commit()
    with store.unit_of_work() as uow:
        assert [t.description for t in uow.tokens.of_user(alice.id)] == ["laptop"]
        assert uow.tokens.user_for("c" * 64, now(), DAY) is not None


def test_uncommitted_work_is_rolled_back(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        uow.users.add("ghost", "hash")
    with store.unit_of_work() as uow:
        assert uow.users.by_name("ghost") is None


def test_duplicate_names_conflict(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        uow.users.add("alice", "hash")
        uow.commit()
    with pytest.raises(Conflict, match="a user of that name already exists"), \
            store.unit_of_work() as uow:
        uow.users.add("alice", "hash")
        uow.commit()


def test_each_conflict_names_what_is_taken(store: SqlStore) -> None:
    """Two writers that both passed the services' checks: the loser is told which value
    was taken (both engines word their errors differently)."""
    with store.unit_of_work() as uow:
        alice = uow.users.add("alice", "hash")
        space = uow.spaces.add("alice", alice.id, {})
        app = uow.apps.add(App(0, space.id, "web"))
        uow.domains.add(app.id, "www.example.test")
        uow.commit()
    with pytest.raises(Conflict, match="an app of that name already exists"), \
            store.unit_of_work() as uow:
        uow.apps.add(App(0, space.id, "web"))
        uow.commit()
    with pytest.raises(Conflict, match="a space of that name already exists"), \
            store.unit_of_work() as uow:
        uow.spaces.add("alice", alice.id, {})
        uow.commit()
    with pytest.raises(Conflict, match="that domain is already in use"), \
            store.unit_of_work() as uow:
        uow.domains.add(app.id, "www.example.test")
        uow.commit()


def test_apps_releases_domains_and_cascading_space_delete(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        owner = uow.users.add("alice", "hash")
        space = uow.spaces.add("team", owner.id, {"quota": {"apps": 1}})
        app = uow.apps.add(App(0, space.id, "web", {"A": "1"}, {"web": Process(2, "small")}))
        for version in (1, 2):
            uow.releases.add(Release(0, app.id, version, "img", f"img@sha256:{version}",
                                     {"A": str(version)}, {"web": None},
                                     {"web": {"count": 2, "size": "small"}}, "d", "alice", now()))
        uow.domains.add(app.id, "www.example.test")
        uow.audit.add(space.id, "alice", "app.create", "web", {"x": 1})
        app.release_version = 2
        uow.apps.save(app)
        uow.commit()
    with store.unit_of_work() as uow:
        got = uow.apps.get(space.id, "web")
        assert got is not None and got.formation == {"web": Process(2, "small")}
        assert got.release_version == 2 and got.config == {"A": "1"}
        assert [r.version for r in uow.releases.of_app(app.id)] == [2, 1]
        assert uow.releases.latest_version(app.id) == 2
        assert uow.domains.by_hostname("www.example.test") is not None
        uow.spaces.delete(space.id)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.apps.by_id(app.id) is None
        assert uow.releases.of_app(app.id) == []
        assert uow.domains.by_hostname("www.example.test") is None
        # the audit trail outlives the space
        assert [e.action for e in uow.audit.of_space(space.id)] == ["app.create"]


def test_migrations_are_idempotent(store: SqlStore) -> None:
    SqlStore(store.url).close()  # running them again on a current schema changes nothing
    with store.unit_of_work() as uow:
        assert uow.users.count() == 0
