"""A node's PostgreSQL tables as JSON Lines, and back: the database half of a backup.

Every table of the node's schema (the connection's current schema), except Alembic's
own, is written one JSON object per row. Values of types JSON has (integers, text,
booleans, floats) go as they are; any other column (the search index's ``tsvector``) goes
as its text form and is cast back when loaded. The dump reads in one ``REPEATABLE READ``
transaction, so every table is from the same moment while the node keeps running.

Loading goes into tables the migrations made at the archive's schema revision, in one
transaction with them: a failure leaves the database as it was. Identity sequences are
moved past the largest id loaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    bindparam,
    cast,
    func,
    inspect,
    select,
    text,
)

from node.storage.db import MIGRATIONS

ALEMBIC_TABLE = "alembic_version"
BATCH = 1000
PROGRESS_EVERY = 50_000
_JSON_TYPES = (int, str, bool, float)
Progress = Callable[[str], None]


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def known_revision(revision: str) -> bool:
    """Whether this version of cattc has the schema revision ``revision``."""
    try:
        return ScriptDirectory.from_config(_alembic_config()).get_revision(revision) is not None
    except Exception:  # alembic raises several kinds for an unknown or malformed id
        return False


def current_revision(conn: Connection) -> str | None:
    if ALEMBIC_TABLE not in inspect(conn).get_table_names():
        return None
    value = conn.execute(text(f"SELECT version_num FROM {ALEMBIC_TABLE}")).scalar()
    return str(value) if value is not None else None


def _native(column: Column[Any]) -> bool:
    try:
        return column.type.python_type in _JSON_TYPES
    except NotImplementedError:
        return False


def reflect(conn: Connection) -> dict[str, Table]:
    """The tables of the connection's schema, reflected at once (a few catalog queries,
    not a few per table), Alembic's own left out."""
    metadata = MetaData()
    metadata.reflect(conn)
    return {n: t for n, t in metadata.tables.items() if n != ALEMBIC_TABLE}


def dump_tables(engine: Engine, out_dir: Path, progress: Progress) -> tuple[str, dict[str, Any]]:
    """Write each table to ``out_dir/<table>.jsonl``; the schema revision and, per
    table, its columns and number of rows."""
    tables: dict[str, Any] = {}
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        with conn.begin():
            revision = current_revision(conn)
            if revision is None:
                raise ValueError("the database has no schema revision: is it a node's?")
            for name, table in sorted(reflect(conn).items()):
                cols = [c if _native(c) else cast(c, String).label(c.name) for c in table.columns]
                stmt = select(*cols).order_by(*table.primary_key.columns)
                result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(stmt)
                count = 0
                with (out_dir / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
                    for row in result:
                        fh.write(json.dumps(dict(row._mapping), ensure_ascii=False) + "\n")
                        count += 1
                        if count % PROGRESS_EVERY == 0:
                            progress(f"database: {name}: {count} rows")
                progress(f"database: {name}: {count} rows")
                tables[name] = {"columns": [c.name for c in table.columns], "rows": count}
    return revision, tables


def is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return not inspect(conn).get_table_names()


def drop_all(conn: Connection) -> None:
    """Drop every table of the connection's schema (``restore --force``)."""
    quote = conn.dialect.identifier_preparer.quote
    for name in inspect(conn).get_table_names():
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(name)} CASCADE")


def migrate_to(conn: Connection, revision: str) -> None:
    cfg = _alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def load_table(
    conn: Connection,
    table: Table | None,
    name: str,
    lines: IO[bytes],
    expected: int,
    progress: Progress,
) -> int:
    """Insert the JSON Lines ``lines`` into ``table`` (made by the migrations; None when
    they made no table ``name``)."""
    if table is None:
        raise ValueError(f"table {name} is not in the schema the archive names")
    values = {
        c.name: bindparam(c.name, type_=c.type) if _native(c) else cast(bindparam(c.name), c.type)
        for c in table.columns
    }
    stmt = table.insert().values(values)
    count = 0
    for batch in _batches(json.loads(line) for line in lines if line.strip()):
        conn.execute(stmt, batch)
        count += len(batch)
        if count % PROGRESS_EVERY < BATCH and count >= PROGRESS_EVERY:
            progress(f"database: {name}: {count} of {expected} rows")
    if count != expected:
        raise ValueError(f"table {name} holds {count} rows, its manifest says {expected}")
    _move_sequences(conn, table)
    progress(f"database: {name}: {count} rows")
    return count


def _batches(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _move_sequences(conn: Connection, table: Table) -> None:
    """Set each serial or identity column's sequence past the largest value loaded."""
    if conn.dialect.name != "postgresql":
        return
    for column in table.primary_key.columns:
        seq = conn.execute(select(func.pg_get_serial_sequence(table.name, column.name))).scalar()
        if seq is None:
            continue
        top = conn.execute(select(func.max(column))).scalar()
        conn.execute(
            select(func.setval(seq, int(top or 0) + 1, False)),
        )
