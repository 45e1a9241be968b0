"""SQL store (SQLAlchemy 2 Core): SQLite by default, PostgreSQL in production."""
