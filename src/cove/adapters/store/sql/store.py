"""The SQL store: an engine, migrations at start-up, and a unit of work per transaction."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from cove.adapters.store.sql import repositories as r
from cove.domain.errors import Conflict

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # One shared connection for :memory:, or every connection sees its own empty database.
        extra: dict[str, Any] = {"poolclass": sa.pool.StaticPool} if ":memory:" in url else {}
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **extra)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if ":memory:" not in url:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _alembic() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    cfg = _alembic()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


# Which unique value a violated constraint guards, by a word of its name or its columns
# (SQLite names the columns, PostgreSQL the constraint).
TAKEN = (("users", "a user of that name already exists: choose another name"),
         ("spaces", "a space of that name already exists: choose another name"),
         ("apps", "an app of that name already exists in this space: choose another name"),
         ("domains", "that domain is already in use by an app"),
         ("releases", "another release was made at the same time: try again"),
         ("builds", "another build started at the same time: try again"),
         ("memberships", "that user is already a member: change their role instead"))


def conflict(err: IntegrityError) -> Conflict:
    """What the user is told when the database refused a write: which value is taken, or
    that something changed meanwhile. Anything else is a defect and stays an error."""
    text = str(err.orig).lower()
    if "foreign key" in text or "foreign_key" in text or "23503" in text:
        return Conflict("it was changed or removed meanwhile: reload and try again")
    if "unique" in text or "duplicate" in text:
        # SQLite says "apps.space_id, apps.name", PostgreSQL "uq_apps_space_name".
        found = re.search(r"(?:^|[^a-z])(" + "|".join(t for t, _ in TAKEN) + r")[._]", text)
        return Conflict(dict(TAKEN)[found.group(1)] if found else
                        "that value is already taken: choose another")
    raise err


def schema_state(url: str) -> tuple[str | None, str]:
    """The database's schema revision and the newest one Cove knows (without migrating)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic()).get_current_head() or ""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision(), head
    finally:
        engine.dispose()


class SqlUnitOfWork:
    users: r.SqlUsers
    tokens: r.SqlTokens
    spaces: r.SqlSpaces
    memberships: r.SqlMemberships
    apps: r.SqlApps
    releases: r.SqlReleases
    domains: r.SqlDomains
    audit: r.SqlAudit
    builds: r.SqlBuilds

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None

    def __enter__(self) -> SqlUnitOfWork:
        conn = self._engine.connect()
        conn.begin()
        self._conn = conn
        self.users = r.SqlUsers(conn)
        self.tokens = r.SqlTokens(conn)
        self.spaces = r.SqlSpaces(conn)
        self.memberships = r.SqlMemberships(conn)
        self.apps = r.SqlApps(conn)
        self.releases = r.SqlReleases(conn)
        self.domains = r.SqlDomains(conn)
        self.audit = r.SqlAudit(conn)
        self.builds = r.SqlBuilds(conn)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._conn is not None
        try:
            self._conn.rollback()  # no-op after commit; undoes anything uncommitted
        finally:
            self._conn.close()
            self._conn = None
        if isinstance(exc, IntegrityError):
            raise conflict(exc) from exc

    def commit(self) -> None:
        assert self._conn is not None
        try:
            self._conn.commit()
        except IntegrityError as err:
            raise conflict(err) from err
        self._conn.begin()


class SqlStore:
    def __init__(self, url: str, *, run_migrations: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        if run_migrations:
            migrate(self.engine)

    def unit_of_work(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)

    def close(self) -> None:
        self.engine.dispose()
