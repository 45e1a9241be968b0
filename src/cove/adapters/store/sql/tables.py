"""SQLAlchemy Core tables. Alembic migrations under migrations/ create them."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
TS = sa.DateTime(timezone=True)

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", TS, nullable=False),
)

tokens = sa.Table(
    "tokens", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("description", sa.String(255), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=True),  # NULL: made before tokens expired
)

spaces = sa.Table(
    "spaces", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("template", sa.JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

memberships = sa.Table(
    "memberships", metadata,
    sa.Column("space_id", sa.Integer, sa.ForeignKey("spaces.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("role", sa.Integer, nullable=False),
)

apps = sa.Table(
    "apps", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("space_id", sa.Integer, sa.ForeignKey("spaces.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("formation", sa.JSON, nullable=False),
    sa.Column("health_path", sa.String(255), nullable=False),
    sa.Column("health_timeout", sa.Integer, nullable=False),
    sa.Column("release_version", sa.Integer, nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("space_id", "name", name="uq_apps_space_name"),
)

releases = sa.Table(
    "releases", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("app_id", sa.Integer, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("image", sa.String(512), nullable=False),
    sa.Column("image_digest", sa.String(512), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("processes", sa.JSON, nullable=False),
    sa.Column("formation", sa.JSON, nullable=False),
    sa.Column("description", sa.String(512), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("app_id", "version", name="uq_releases_app_version"),
)

domains = sa.Table(
    "domains", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("app_id", sa.Integer, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    sa.Column("hostname", sa.String(253), nullable=False, unique=True),
)

audit = sa.Table(
    "audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # No foreign key: the trail outlives the space it describes.
    sa.Column("space_id", sa.Integer, nullable=True, index=True),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

builds = sa.Table(
    "builds", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("app_id", sa.Integer, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("builder", sa.String(64), nullable=False),
    sa.Column("image", sa.String(512), nullable=False),
    sa.Column("release_version", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("log", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("finished_at", TS, nullable=True),
    sa.UniqueConstraint("app_id", "number", name="uq_builds_app_number"),
)
