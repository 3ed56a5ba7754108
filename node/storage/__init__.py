"""Persistence of a node: SQLAlchemy 2 typed ORM, Alembic migrations, SQLite or PostgreSQL."""
