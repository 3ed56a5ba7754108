"""Engines and migrations: SQLite (WAL) by default, PostgreSQL by URL; Alembic at start.

Also what an operator is told when the database URL is wrong or the database cannot be
reached (``DatabaseUnavailable``): one sentence with the URL (password hidden) and what to
do, never a driver's traceback.

SQLite and several processes (``cattc serve`` and a CLI command on one data directory):
WAL, so that readers never wait for a writer; a writer waits up to ``SQLITE_BUSY_S`` for
another's lock; and a write transaction takes the write lock when it begins
(``BEGIN IMMEDIATE``: every ``Session.begin()``, and Core code through ``begin_write``),
so that what it reads before writing cannot change under it. Without that, the driver
begins only at the first write, and two processes that both read "no such row" both
insert it: the second fails on its unique key. PostgreSQL (read committed) has the same
race for whoever inserts keys chosen from what it read: ``begin_write`` locks the table.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, SessionTransaction, SessionTransactionOrigin

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_S = 30
URL_FORMS = "use postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or none for SQLite in DATA_DIR"


class DatabaseUnavailable(Exception):
    """The database URL is wrong, or the database cannot be reached or used; the message
    says which and what to do."""


def redact(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings this project relies on for each backend. A URL of
    another kind, or not a URL, raises ``DatabaseUnavailable``."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        backend = make_url(url).get_backend_name()
    except exc.ArgumentError as error:
        raise DatabaseUnavailable(f"{url!r} is not a database URL; {URL_FORMS}") from error
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseUnavailable(f"{redact(url)}: unsupported database; {URL_FORMS}")
    if backend == "sqlite":
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_S}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        if not event.contains(Session, "after_begin", _write_lock_for_session):
            event.listen(Session, "after_begin", _write_lock_for_session)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True, **kwargs)
    except (exc.ArgumentError, ImportError) as error:
        raise DatabaseUnavailable(f"{redact(url)}: {error}; {URL_FORMS}") from error


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def begin_write(conn: Connection, *tables: str) -> None:
    """Lock for the transaction ``conn`` just began, before it reads anything, so that
    what it reads as absent stays absent until it commits. On SQLite: the database's
    write lock (waiting up to ``SQLITE_BUSY_S`` for another writer; nothing once the
    transaction has run a statement). On PostgreSQL: ``tables`` against other writers
    (``SHARE ROW EXCLUSIVE``: readers go on), each writer that inserts keys it chose after
    reading taking the same lock."""
    if conn.dialect.name == "postgresql":
        quote = conn.dialect.identifier_preparer.quote
        for table in tables:
            conn.exec_driver_sql(f"LOCK TABLE {quote(table)} IN SHARE ROW EXCLUSIVE MODE")
        return
    if conn.dialect.name != "sqlite":
        return
    dbapi = conn.connection.dbapi_connection
    if dbapi is not None and not dbapi.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _write_lock_for_session(
    _session: Session, transaction: SessionTransaction, connection: Connection
) -> None:
    """``with Session(engine) as s, s.begin():`` is a write transaction: lock at once."""
    if transaction.origin is SessionTransactionOrigin.BEGIN:
        begin_write(connection)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    # alembic (12 MB with its templates) loads in the process that migrates, not in the
    # matching worker and the processes that only open the database.
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def check_connection(engine: Engine) -> None:
    """Connect once, so that a database that cannot be reached is found before anything
    is written; raises ``DatabaseUnavailable``."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except exc.DBAPIError as error:
        raise DatabaseUnavailable(describe_database_error(error, str(engine.url))) from error


def describe_database_error(error: BaseException, url: str) -> str:
    """One line for an operator: what is wrong with the database at ``url`` (empty when
    unknown), and what to do."""
    if isinstance(error, DatabaseUnavailable):
        return str(error)
    cause = getattr(error, "orig", None) or error
    first = (str(cause).strip().splitlines() or [cause.__class__.__name__])[0]
    first = first.removeprefix("connection failed: ")
    if url.startswith("sqlite") or type(cause).__module__ == "sqlite3":
        path = (make_url(url).database or "") if url else ""
        name = f"the SQLite database {path}" if path else "the node's SQLite database"
        if "unable to open database file" in first and path and not Path(path).parent.is_dir():
            return f"cannot create {name}: {Path(path).parent} does not exist; create it first"
        if "locked" in first or "busy" in first:
            return (
                f"{name} stayed locked by another process for {SQLITE_BUSY_S} s; "
                "try again when it is less busy"
            )
        return f"cannot use {name}: {first}"
    where = f"the database {redact(url)}" if url else "the node's database"
    if isinstance(error, exc.OperationalError | exc.InterfaceError):
        return (
            f"cannot reach {where}: {first}; check that it runs, that the database "
            "exists (createdb) and the URL"
        )
    return f"{where} failed: {first}"
