"""Repositories over one SQLAlchemy connection; rows map to domain dataclasses."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from cove.adapters.store.sql import tables as t
from cove.domain.builds import RUNNING, Build
from cove.domain.models import (
    App,
    AuditEvent,
    Autoscale,
    DomainName,
    Process,
    Release,
    Space,
    TokenInfo,
    User,
    now,
)
from cove.domain.roles import Role


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands timestamps back naive; they were written in UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _user(row: RowMapping) -> User:
    return User(row["id"], row["name"], row["password_hash"], row["is_admin"],
                _utc(row["created_at"]))


def _space(row: RowMapping) -> Space:
    return Space(row["id"], row["name"], row["owner_id"], row["template"], _utc(row["created_at"]))


def _app(row: RowMapping) -> App:
    formation = {k: Process(v["count"], v["size"],
                            Autoscale(**v["autoscale"]) if v.get("autoscale") else None)
                 for k, v in row["formation"].items()}
    return App(row["id"], row["space_id"], row["name"], dict(row["config"]), formation,
               row["health_path"], row["health_timeout"], row["release_version"],
               _utc(row["created_at"]))


def _formation_json(formation: dict[str, Process]) -> dict[str, Any]:
    return {k: p.as_dict() for k, p in formation.items()}


def _new_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


class _Repo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _one(self, query: Any) -> RowMapping | None:
        return self.conn.execute(query).mappings().first()


class SqlUsers(_Repo):
    def add(self, name: str, password_hash: str, is_admin: bool = False) -> User:
        created = now()
        result = self.conn.execute(t.users.insert().values(
            name=name, password_hash=password_hash, is_admin=is_admin, created_at=created))
        return User(_new_id(result), name, password_hash, is_admin, created)

    def get(self, user_id: int) -> User | None:
        row = self._one(t.users.select().where(t.users.c.id == user_id))
        return _user(row) if row else None

    def by_name(self, name: str) -> User | None:
        row = self._one(t.users.select().where(t.users.c.name == name))
        return _user(row) if row else None

    def count(self) -> int:
        return int(self.conn.execute(sa.select(sa.func.count()).select_from(t.users)).scalar_one())

    def set_password(self, user_id: int, password_hash: str) -> None:
        self.conn.execute(t.users.update().where(t.users.c.id == user_id)
                          .values(password_hash=password_hash))


class SqlTokens(_Repo):
    def add(self, user_id: int, token_hash: str, description: str,
            expires_at: dt.datetime) -> None:
        self.conn.execute(t.tokens.insert().values(
            user_id=user_id, token_hash=token_hash, description=description, created_at=now(),
            expires_at=expires_at))

    def user_for(self, token_hash: str, now: dt.datetime,
                 lifetime: dt.timedelta) -> User | None:
        row = self._one(sa.select(t.users, t.tokens.c.created_at.label("token_created"),
                                  t.tokens.c.expires_at)
                        .join(t.tokens, t.tokens.c.user_id == t.users.c.id)
                        .where(t.tokens.c.token_hash == token_hash))
        if row is None:
            return None
        expires = _utc(row["expires_at"]) if row["expires_at"] else \
            _utc(row["token_created"]) + lifetime
        return _user(row) if now < expires else None

    def of_user(self, user_id: int) -> list[TokenInfo]:
        rows = self.conn.execute(t.tokens.select().where(t.tokens.c.user_id == user_id)
                                 .order_by(t.tokens.c.id)).mappings()
        return [TokenInfo(r["id"], r["description"], _utc(r["created_at"]),
                          _utc(r["expires_at"] or r["created_at"])) for r in rows]

    def delete(self, token_hash: str) -> None:
        self.conn.execute(t.tokens.delete().where(t.tokens.c.token_hash == token_hash))

    def delete_id(self, user_id: int, token_id: int) -> bool:
        done = self.conn.execute(t.tokens.delete().where(t.tokens.c.id == token_id,
                                                         t.tokens.c.user_id == user_id))
        return bool(done.rowcount)

    def delete_others(self, user_id: int, keep_hash: str) -> int:
        done = self.conn.execute(t.tokens.delete().where(t.tokens.c.user_id == user_id,
                                                         t.tokens.c.token_hash != keep_hash))
        return int(done.rowcount)


class SqlSpaces(_Repo):
    def add(self, name: str, owner_id: int, template: dict[str, Any]) -> Space:
        created = now()
        result = self.conn.execute(t.spaces.insert().values(
            name=name, owner_id=owner_id, template=template, created_at=created))
        return Space(_new_id(result), name, owner_id, template, created)

    def by_name(self, name: str) -> Space | None:
        row = self._one(t.spaces.select().where(t.spaces.c.name == name))
        return _space(row) if row else None

    def get(self, space_id: int) -> Space | None:
        row = self._one(t.spaces.select().where(t.spaces.c.id == space_id))
        return _space(row) if row else None

    def all(self) -> list[Space]:
        rows = self.conn.execute(t.spaces.select().order_by(t.spaces.c.name)).mappings()
        return [_space(r) for r in rows]

    def owned_count(self, user_id: int) -> int:
        query = sa.select(sa.func.count()).select_from(t.spaces).where(
            t.spaces.c.owner_id == user_id)
        return int(self.conn.execute(query).scalar_one())

    def set_template(self, space_id: int, template: dict[str, Any]) -> None:
        self.conn.execute(t.spaces.update().where(t.spaces.c.id == space_id)
                          .values(template=template))

    def delete(self, space_id: int) -> None:
        # Explicit child deletes: SQLite enforces ON DELETE CASCADE only with a pragma.
        app_ids = sa.select(t.apps.c.id).where(t.apps.c.space_id == space_id)
        for table in (t.releases, t.domains, t.builds):
            self.conn.execute(table.delete().where(table.c.app_id.in_(app_ids)))
        self.conn.execute(t.apps.delete().where(t.apps.c.space_id == space_id))
        self.conn.execute(t.memberships.delete().where(t.memberships.c.space_id == space_id))
        self.conn.execute(t.spaces.delete().where(t.spaces.c.id == space_id))


class SqlMemberships(_Repo):
    def set(self, space_id: int, user_id: int, role: Role) -> None:
        self.remove(space_id, user_id)
        self.conn.execute(t.memberships.insert().values(
            space_id=space_id, user_id=user_id, role=int(role)))

    def role(self, space_id: int, user_id: int) -> Role | None:
        row = self._one(t.memberships.select().where(
            t.memberships.c.space_id == space_id, t.memberships.c.user_id == user_id))
        return Role(row["role"]) if row else None

    def of_space(self, space_id: int) -> list[tuple[User, Role]]:
        rows = self.conn.execute(
            sa.select(t.users, t.memberships.c.role)
            .join(t.memberships, t.memberships.c.user_id == t.users.c.id)
            .where(t.memberships.c.space_id == space_id).order_by(t.users.c.name)).mappings()
        return [(_user(r), Role(r["role"])) for r in rows]

    def of_user(self, user_id: int) -> list[tuple[Space, Role]]:
        rows = self.conn.execute(
            sa.select(t.spaces, t.memberships.c.role)
            .join(t.memberships, t.memberships.c.space_id == t.spaces.c.id)
            .where(t.memberships.c.user_id == user_id).order_by(t.spaces.c.name)).mappings()
        return [(_space(r), Role(r["role"])) for r in rows]

    def remove(self, space_id: int, user_id: int) -> None:
        self.conn.execute(t.memberships.delete().where(
            t.memberships.c.space_id == space_id, t.memberships.c.user_id == user_id))


class SqlApps(_Repo):
    def _values(self, app: App) -> dict[str, Any]:
        return {"space_id": app.space_id, "name": app.name, "config": app.config,
                "formation": _formation_json(app.formation), "health_path": app.health_path,
                "health_timeout": app.health_timeout, "release_version": app.release_version,
                "created_at": app.created_at}

    def add(self, app: App) -> App:
        result = self.conn.execute(t.apps.insert().values(**self._values(app)))
        app.id = _new_id(result)
        return app

    def get(self, space_id: int, name: str) -> App | None:
        row = self._one(t.apps.select().where(t.apps.c.space_id == space_id,
                                              t.apps.c.name == name))
        return _app(row) if row else None

    def by_id(self, app_id: int) -> App | None:
        row = self._one(t.apps.select().where(t.apps.c.id == app_id))
        return _app(row) if row else None

    def of_space(self, space_id: int) -> list[App]:
        rows = self.conn.execute(t.apps.select().where(t.apps.c.space_id == space_id)
                                 .order_by(t.apps.c.name)).mappings()
        return [_app(r) for r in rows]

    def all(self) -> list[App]:
        rows = self.conn.execute(t.apps.select().order_by(t.apps.c.id)).mappings()
        return [_app(r) for r in rows]

    def save(self, app: App) -> None:
        self.conn.execute(t.apps.update().where(t.apps.c.id == app.id).values(**self._values(app)))

    def delete(self, app_id: int) -> None:
        for table in (t.releases, t.domains, t.builds):
            self.conn.execute(table.delete().where(table.c.app_id == app_id))
        self.conn.execute(t.apps.delete().where(t.apps.c.id == app_id))


def _release(row: RowMapping) -> Release:
    return Release(row["id"], row["app_id"], row["version"], row["image"], row["image_digest"],
                   dict(row["config"]), dict(row["processes"]), dict(row["formation"]),
                   row["description"], row["created_by"], _utc(row["created_at"]))


class SqlReleases(_Repo):
    def add(self, release: Release) -> Release:
        values = {k: getattr(release, k) for k in (
            "app_id", "version", "image", "image_digest", "config", "processes", "formation",
            "description", "created_by", "created_at")}
        result = self.conn.execute(t.releases.insert().values(**values))
        got = self.get(release.app_id, release.version)
        assert got is not None and got.id == _new_id(result)
        return got

    def get(self, app_id: int, version: int) -> Release | None:
        row = self._one(t.releases.select().where(t.releases.c.app_id == app_id,
                                                  t.releases.c.version == version))
        return _release(row) if row else None

    def of_app(self, app_id: int) -> list[Release]:
        rows = self.conn.execute(t.releases.select().where(t.releases.c.app_id == app_id)
                                 .order_by(t.releases.c.version.desc())).mappings()
        return [_release(r) for r in rows]

    def latest_version(self, app_id: int) -> int:
        query = sa.select(sa.func.max(t.releases.c.version)).where(t.releases.c.app_id == app_id)
        return int(self.conn.execute(query).scalar_one() or 0)


class SqlDomains(_Repo):
    def add(self, app_id: int, hostname: str) -> DomainName:
        result = self.conn.execute(t.domains.insert().values(app_id=app_id, hostname=hostname))
        return DomainName(_new_id(result), app_id, hostname)

    def by_hostname(self, hostname: str) -> DomainName | None:
        row = self._one(t.domains.select().where(t.domains.c.hostname == hostname))
        return DomainName(row["id"], row["app_id"], row["hostname"]) if row else None

    def of_app(self, app_id: int) -> list[DomainName]:
        rows = self.conn.execute(t.domains.select().where(t.domains.c.app_id == app_id)
                                 .order_by(t.domains.c.hostname)).mappings()
        return [DomainName(r["id"], r["app_id"], r["hostname"]) for r in rows]

    def delete(self, domain_id: int) -> None:
        self.conn.execute(t.domains.delete().where(t.domains.c.id == domain_id))


class SqlAudit(_Repo):
    def add(self, space_id: int | None, actor: str, action: str, target: str,
            detail: dict[str, Any]) -> None:
        self.conn.execute(t.audit.insert().values(
            space_id=space_id, actor=actor, action=action, target=target, detail=detail,
            created_at=now()))

    def of_space(self, space_id: int, limit: int = 100) -> list[AuditEvent]:
        rows = self.conn.execute(t.audit.select().where(t.audit.c.space_id == space_id)
                                 .order_by(t.audit.c.id.desc()).limit(limit)).mappings()
        return [AuditEvent(r["id"], r["space_id"], r["actor"], r["action"], r["target"],
                           dict(r["detail"]), _utc(r["created_at"])) for r in rows]


def _build(row: RowMapping) -> Build:
    return Build(row["id"], row["app_id"], row["number"], row["status"], row["created_by"],
                 row["builder"], row["image"], row["release_version"], row["error"], row["log"],
                 _utc(row["created_at"]),
                 _utc(row["finished_at"]) if row["finished_at"] else None)


class SqlBuilds(_Repo):
    def add(self, app_id: int, created_by: str, status: str) -> Build:
        query = sa.select(sa.func.max(t.builds.c.number)).where(t.builds.c.app_id == app_id)
        number = int(self.conn.execute(query).scalar_one() or 0) + 1
        build = Build(0, app_id, number, status, created_by)
        result = self.conn.execute(t.builds.insert().values(
            app_id=app_id, number=number, status=status, builder="", image="", error="",
            log="", created_by=created_by, created_at=build.created_at))
        build.id = _new_id(result)
        return build

    def save(self, build: Build) -> None:
        self.conn.execute(t.builds.update().where(t.builds.c.id == build.id).values(
            status=build.status, builder=build.builder, image=build.image,
            release_version=build.release_version, error=build.error, log=build.log,
            finished_at=build.finished_at))

    def get(self, app_id: int, number: int) -> Build | None:
        row = self._one(t.builds.select().where(t.builds.c.app_id == app_id,
                                                t.builds.c.number == number))
        return _build(row) if row else None

    def of_app(self, app_id: int) -> list[Build]:
        rows = self.conn.execute(t.builds.select().where(t.builds.c.app_id == app_id)
                                 .order_by(t.builds.c.number.desc())).mappings()
        return [_build(r) for r in rows]

    def running(self) -> list[Build]:
        rows = self.conn.execute(t.builds.select().where(t.builds.c.status == RUNNING))
        return [_build(r) for r in rows.mappings()]
