"""``cattc restore``: a backup archive (``node.services.backup``) back into an empty data
directory and an empty database.

Nothing is written before the archive has been read through once and every member
matched the manifest, and before the target directory and database were found empty
(``force`` overwrites them). A SQLite database is put back as the file it was; a
PostgreSQL one is loaded into tables made by the migrations at the archive's schema
revision, in one transaction, then migrated to the newest schema, as ``cattc serve``
would.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from sqlalchemy import Connection, Engine, Table

from node.config import CONFIG_FILE, DB_FILE
from node.services import backup_tables as tables
from node.services import serve_lock
from node.services.backup import (
    MANIFEST,
    SQLITE_MEMBER,
    SQLITE_SIDE_FILES,
    BackupError,
    Progress,
    Report,
    _quiet,
    _sqlite_path,
    read_manifest,
)
from node.storage.db import (
    DatabaseUnavailable,
    check_connection,
    make_engine,
    migrate,
    redact,
)

CONFIG_MEMBER = f"data/{CONFIG_FILE}"


def restore_backup(
    archive: Path,
    data_dir: Path,
    *,
    database_url: str | None = None,
    force: bool = False,
    progress: Progress = _quiet,
) -> Report:
    """Restore ``archive`` into ``data_dir`` and its database (the archive's own
    PostgreSQL URL, ``database_url``, or SQLite in ``data_dir``)."""
    if data_dir.exists() and not data_dir.is_dir():
        raise BackupError(f"{data_dir} is a file; give a directory to restore into")
    if data_dir.is_dir() and any(data_dir.iterdir()) and not force:
        raise BackupError(
            f"{data_dir} is not empty; restore into a new directory, or use --force to overwrite it"
        )
    if not data_dir.is_dir():
        return _restore(archive, data_dir, database_url, force, progress)
    try:  # held to the end: no cattc serve writes under the restore, none starts during it
        lock = serve_lock.take(data_dir)
    except serve_lock.LockHeld as exc:
        raise BackupError(
            f"cattc serve (pid {exc.holder}) is running on {data_dir}; stop it before "
            "restoring into its data directory"
        ) from None
    try:
        return _restore(archive, data_dir, database_url, force, progress)
    finally:
        os.close(lock)


def _restore(
    archive: Path, data_dir: Path, database_url: str | None, force: bool, progress: Progress
) -> Report:
    progress(f"checking {archive}")
    manifest, kept = read_manifest(archive, keep=(CONFIG_MEMBER,))
    revision = str(manifest.get("alembic_version"))
    if not tables.known_revision(revision):
        raise BackupError(
            f"{archive} holds database schema {revision}, which this cattc does not know: "
            "restore it with the cattc version that made it, or a newer one"
        )
    if CONFIG_MEMBER not in kept:
        raise BackupError(f"{archive} holds no {CONFIG_FILE}: it is not a node's backup")
    try:
        config = tomllib.loads(kept[CONFIG_MEMBER].decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BackupError(f"{archive}: its {CONFIG_FILE} cannot be read ({exc})") from None
    _same_node(data_dir, str(manifest.get("node_id")))
    url = _target_url(manifest["engine"], config, database_url)
    engine = _target_engine(url, data_dir)
    try:
        sqlite_target = _check_database(engine, manifest["engine"], url, data_dir, force)
        progress(f"{archive}: {len(manifest['members'])} members match the manifest")
        made_dir = not data_dir.exists()
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config["database_url"] = url
        try:
            files = _write(
                archive,
                data_dir,
                engine,
                revision,
                manifest,
                config,
                sqlite_target,
                force,
                progress,
            )
            migrate(engine)
        except BaseException:
            if made_dir:  # a failed restore leaves no half-made node behind
                shutil.rmtree(data_dir, ignore_errors=True)
            raise
    finally:
        engine.dispose()
    return Report(
        archive=archive,
        node_id=str(manifest.get("node_id")),
        engine=manifest["engine"],
        revision=revision,
        files=files,
        tables={t: int(i["rows"]) for t, i in manifest.get("tables", {}).items()},
        database=redact(url) if url else f"SQLite {data_dir / DB_FILE}",
        data_dir=data_dir,
    )


def _same_node(data_dir: Path, node_id: str) -> None:
    """A data directory holding a node is overwritten only by a backup of that node: an
    archive of another would silently give it that node's identity and keys."""
    try:
        held = tomllib.loads((data_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return  # no node there, or none that can be read: nothing to keep
    if held.get("node_id") not in (None, node_id):
        raise BackupError(
            f"{data_dir} holds node {held.get('node_id')!r}; the archive is of node "
            f"{node_id!r}: restore it into a new directory"
        )


def _target_url(engine_name: str, config: dict[str, Any], database_url: str | None) -> str:
    """The database to restore into ("" for SQLite in the data directory)."""
    if database_url:
        url = database_url
    elif engine_name == "sqlite":
        url = ""
    else:
        url = str(config.get("database_url") or "")
        if not url:
            raise BackupError(
                "the archive is of a PostgreSQL node whose node.toml names no database; "
                "give --database-url postgresql://..."
            )
    is_sqlite = url == "" or url.startswith("sqlite")
    if is_sqlite != (engine_name == "sqlite"):
        raise BackupError(
            f"the archive holds a {engine_name} database; restore it into {engine_name} "
            "(moving between engines is not supported)"
        )
    return url


def _target_engine(url: str, data_dir: Path) -> Engine:
    try:
        return make_engine(url or f"sqlite:///{(data_dir / DB_FILE).resolve()}")
    except DatabaseUnavailable as exc:
        raise BackupError(str(exc)) from exc


def _check_database(
    engine: Engine, engine_name: str, url: str, data_dir: Path, force: bool
) -> Path | None:
    """The SQLite file to write (None for PostgreSQL), once the target is found empty."""
    if engine_name == "sqlite":
        path = _sqlite_path(url) if url else (data_dir / DB_FILE).resolve()
        assert path is not None
        if path.exists() and path.stat().st_size > 0 and not force:
            raise BackupError(f"{path} exists; use --force to overwrite it")
        if not path.parent.is_dir() and path.parent != data_dir.resolve():
            raise BackupError(f"{path.parent} does not exist; create it first")
        return path
    try:
        check_connection(engine)
    except DatabaseUnavailable as exc:
        raise BackupError(str(exc)) from exc
    if not tables.is_empty(engine) and not force:
        raise BackupError(
            f"the database {redact(url)} is not empty; restore into an empty database or "
            "schema, or use --force to replace its tables"
        )
    return None


def _write(
    archive: Path,
    data_dir: Path,
    engine: Engine,
    revision: str,
    manifest: dict[str, Any],
    config: dict[str, Any],
    sqlite_target: Path | None,
    force: bool,
    progress: Progress,
) -> list[str]:
    files: list[str] = []
    row_counts = {t: int(i["rows"]) for t, i in manifest.get("tables", {}).items()}
    conn: Connection | None = None
    made: dict[str, Table] = {}
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                if member.name == MANIFEST:
                    continue
                fh = tar.extractfile(member)
                assert fh is not None
                if member.name.startswith("data/"):
                    rel = member.name.removeprefix("data/")
                    body = tomli_w.dumps(config).encode() if member.name == CONFIG_MEMBER else None
                    _write_file(
                        data_dir / rel, body if body is not None else fh.read(), member.mode
                    )
                    files.append(rel)
                elif member.name == SQLITE_MEMBER and sqlite_target is not None:
                    _write_sqlite(sqlite_target, fh, progress)
                elif member.name.endswith(".jsonl"):
                    if conn is None:
                        conn = engine.connect()
                        conn.begin()
                        if force:
                            tables.drop_all(conn)
                        tables.migrate_to(conn, revision)
                        made = tables.reflect(conn)
                    name = member.name.removeprefix("db/").removesuffix(".jsonl")
                    expected = row_counts.get(name, -1)
                    tables.load_table(conn, made.get(name), name, fh, expected, progress)
        if conn is not None:
            conn.commit()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{archive} could not be read to the end: {exc}") from exc
    except ValueError as exc:
        raise BackupError(f"{archive}: {exc}") from exc
    finally:
        if conn is not None:
            conn.close()
    return files


def _write_file(path: Path, body: bytes, mode: int) -> None:
    """A file of the data directory, readable by its owner only (it may be the key)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(body)
    os.chmod(path, (mode & 0o700) or 0o600)


def _write_sqlite(target: Path, fh: Any, progress: Progress) -> None:
    partial = target.with_name(target.name + ".restoring")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written = 0
    with os.fdopen(fd, "wb") as out:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            out.write(chunk)
            written += len(chunk)
            if written % (256 << 20) == 0:
                progress(f"database: {written >> 20} MiB written")
        out.flush()
        os.fsync(out.fileno())
    for side in SQLITE_SIDE_FILES:
        Path(f"{target}{side}").unlink(missing_ok=True)
    os.replace(partial, target)
    progress(f"database: {target} ({written / (1 << 20):.1f} MiB)")
