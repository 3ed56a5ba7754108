"""The Alembic migrations build exactly the schema the models describe, on every engine
under test: a column, index or table added to a model without its migration fails here
(a node upgraded in place would otherwise miss it, while fresh test databases have it)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from node.storage.db import make_engine, migrate
from node.storage.models import Base
from tests.conftest import DatabaseUrlFactory

FTS = "search_fts"
FTS_TABLES = {
    "sqlite": {FTS, *(f"{FTS}_{s}" for s in ("data", "idx", "content", "docsize", "config"))},
    "postgresql": {FTS},
}


def test_migrations_match_the_models(database_url: DatabaseUrlFactory) -> None:
    engine = make_engine(database_url("schema"))
    try:
        migrate(engine)
        migrate(engine)  # idempotent: a second run changes nothing
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        # The full-text index is the engine's own kind of table (FTS5 and its shadow
        # tables, or a tsvector table): made by the migration, not by a model.
        fts = FTS_TABLES[engine.name]
        assert {d[1].name for d in diff if d[0] == "remove_table"} <= fts
        assert [d for d in diff if d[0] not in ("remove_table", "remove_index")] == []
        assert {d[1].table.name for d in diff if d[0] == "remove_index"} <= fts
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
        assert FTS_TABLES[engine.name] <= tables
        with engine.connect() as conn:
            indexes = {
                tuple(ix["column_names"]) for ix in inspect(conn).get_indexes("remote_listings")
            }
        assert ("origin", "feed_seq") in indexes
    finally:
        engine.dispose()
