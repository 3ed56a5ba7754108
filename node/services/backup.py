"""``cattc backup`` and ``cattc restore``: a node's data directory and database in one
``.tar.gz``, and back into an empty directory and database.

The archive holds ``manifest.json`` first (format, version, node, engine, schema
revision, and the size and SHA-256 of every other member), then ``data/...`` (the data
directory: configuration, signing keys, admin token hash, policy) and ``db/...``: on
SQLite one consistent copy of the database made with SQLite's online backup API (safe
while ``cattc serve`` runs), on PostgreSQL one JSON Lines file per table
(``node.services.backup_tables``). The archive holds the node's private signing key: it
is written with mode 0600.

A restore checks everything it can before it writes anything: the manifest, every
member's name, size and SHA-256, and that the target directory and database are empty
(``force`` overwrites them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.engine import make_url

from node.config import load_config
from node.services import backup_tables as tables
from node.services import serve_lock
from node.services.errors import ServiceError
from node.services.peer_lock import LOCK_DIR
from node.storage.db import make_engine, redact

FORMAT = "cattc-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "db/node.db"
MANIFEST_MAX_BYTES = 16 * 1024 * 1024
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
SERVE_LOCK = serve_lock.LOCK_FILE
LOCKS = (SERVE_LOCK, LOCK_DIR)
Progress = Callable[[str], None]


class BackupError(ServiceError):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass
class Report:
    """What a backup wrote or a restore restored."""

    archive: Path
    node_id: str
    engine: str
    revision: str
    files: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    database: str = ""
    data_dir: Path | None = None


def _quiet(_line: str) -> None:
    pass


def _sqlite_path(url: str) -> Path | None:
    """The SQLite file of ``url``, None for PostgreSQL; ``DatabaseUnavailable`` (one
    sentence for the operator) for a URL that is neither."""
    make_engine(url).dispose()  # the one place that names a wrong URL for what it is
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database).resolve()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- backup -----------------------------------------------------------------------------
def create_backup(data_dir: Path, out: Path, *, progress: Progress = _quiet) -> Report:
    """Write ``data_dir`` and its database to the new file ``out`` (mode 0600)."""
    config = load_config(data_dir)
    url = config.resolved_database_url(data_dir)
    if out.exists():
        raise BackupError(f"{out} exists; choose a new file name (a backup never overwrites)")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent} is not a directory; create it first")
    db_path = _sqlite_path(url)
    engine_name = "sqlite" if db_path is not None else "postgresql"
    staging = Path(tempfile.mkdtemp(prefix=".cattc-backup-", dir=out.parent))
    try:
        members: list[tuple[str, Path]] = []
        # Lock files belong to the processes that hold them now, not to a restored node.
        skip = {out.resolve(), staging.resolve(), *(data_dir.resolve() / n for n in LOCKS)}
        if db_path is not None:
            skip |= {db_path, *(Path(f"{db_path}{s}") for s in SQLITE_SIDE_FILES)}
        for path in sorted(data_dir.resolve().rglob("*")):
            if any(path == s or s in path.parents for s in skip) or path.is_symlink():
                continue
            if path.is_file():
                copy = staging / "data" / path.relative_to(data_dir.resolve())
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, copy)
                members.append((f"data/{path.relative_to(data_dir.resolve()).as_posix()}", copy))
        (staging / "db").mkdir()
        table_info: dict[str, Any] = {}
        if db_path is not None:
            revision = _sqlite_copy(db_path, staging / SQLITE_MEMBER, progress)
            members.append((SQLITE_MEMBER, staging / SQLITE_MEMBER))
        else:
            engine = make_engine(url)
            try:
                revision, table_info = tables.dump_tables(engine, staging / "db", progress)
            finally:
                engine.dispose()
            members += [(f"db/{t}.jsonl", staging / "db" / f"{t}.jsonl") for t in table_info]
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "node_id": config.node_id,
            "engine": engine_name,
            "alembic_version": revision,
            "tables": table_info,
            "members": {
                name: {"size": path.stat().st_size, "sha256": _sha256(path)}
                for name, path in members
            },
        }
        _write_archive(out, staging, manifest, members)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Report(
        archive=out,
        node_id=config.node_id,
        engine=engine_name,
        revision=revision,
        files=[n.removeprefix("data/") for n, _ in members if n.startswith("data/")],
        tables={t: int(i["rows"]) for t, i in table_info.items()},
        database=redact(url),
    )


def _sqlite_copy(source: Path, target: Path, progress: Progress) -> str:
    """A consistent copy of the live database ``source`` (online backup API); its schema
    revision."""
    if not source.is_file():
        raise BackupError(f"the database {source} does not exist")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30, isolation_level=None)
    dst = sqlite3.connect(target)
    shown = [-1]

    def step(_status: int, remaining: int, total: int) -> None:
        done = (total - remaining) * 100 // max(total, 1)
        if done // 10 > shown[0] and total > 10_000:
            shown[0] = done // 10
            progress(f"database: {done}% of {total} pages copied")

    try:
        # One read transaction for the whole copy: the steps all read its snapshot (WAL),
        # so writes by the running node neither restart the copy nor wait for it.
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        src.backup(dst, pages=4096, progress=step)
        src.execute("COMMIT")
        row = dst.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy the database {source}: {exc}") from exc
    finally:
        dst.close()
        src.close()
    if row is None:
        raise BackupError(f"{source} has no schema revision: is it a node's database?")
    return str(row[0])


def _write_archive(
    out: Path, staging: Path, manifest: dict[str, Any], members: list[tuple[str, Path]]
) -> None:
    """The archive, written beside ``out`` and renamed into place, never readable by
    others."""
    partial = staging / "archive.tar.gz"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        body = json.dumps(manifest, indent=2, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.mtime = len(body), 0o600, int(dt.datetime.now().timestamp())
        tar.addfile(info, io.BytesIO(body))
        for name, path in members:
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as fh:
                tar.addfile(info, fh)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(partial, out)
    os.chmod(out, 0o600)


# -- reading an archive -----------------------------------------------------------------
def read_manifest(
    archive: Path, *, keep: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The archive's manifest, checked, and every member against it (names, sizes,
    SHA-256), with the contents of the members named in ``keep``; BackupError naming
    the first thing wrong."""
    kept: dict[str, bytes] = {}
    if not archive.is_file():
        raise BackupError(f"{archive} is not a file")
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isfile():
                raise BackupError(f"{archive} is not a cattc backup (no {MANIFEST} first)")
            if first.size > MANIFEST_MAX_BYTES:
                raise BackupError(f"{archive}: {MANIFEST} is too large")
            manifest = _parse_manifest(archive, _read(tar, first))
            expected: dict[str, dict[str, Any]] = manifest["members"]
            seen: set[str] = set()
            while (member := tar.next()) is not None:
                name = member.name
                if name not in expected or name in seen or not member.isfile():
                    raise BackupError(f"{archive} was changed: unexpected member {name!r}")
                digest = hashlib.sha256()
                for chunk in _chunks(tar, member):
                    digest.update(chunk)
                    if name in keep:
                        kept[name] = kept.get(name, b"") + chunk
                if (
                    member.size != expected[name]["size"]
                    or digest.hexdigest() != (expected[name]["sha256"])
                ):
                    raise BackupError(f"{archive} was changed or damaged: {name} does not match")
                seen.add(name)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{archive} is not a readable .tar.gz backup: {exc}") from exc
    missing = sorted(set(expected) - seen)
    if missing:
        raise BackupError(f"{archive} is incomplete: {', '.join(missing[:5])} missing")
    return manifest, kept


def _chunks(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    fh = tar.extractfile(member)
    assert fh is not None
    while chunk := fh.read(1 << 20):
        yield chunk


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    fh = tar.extractfile(member)
    assert fh is not None
    return fh.read()


def _parse_manifest(archive: Path, body: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(body)
    except ValueError as exc:
        raise BackupError(f"{archive}: {MANIFEST} is not JSON") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{archive} is not a cattc backup")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"{archive} is backup format {manifest.get('format_version')!r}; this cattc "
            f"reads format {FORMAT_VERSION}: use the cattc version that made it"
        )
    members = manifest.get("members")
    if not isinstance(members, dict) or manifest.get("engine") not in ("sqlite", "postgresql"):
        raise BackupError(f"{archive}: {MANIFEST} is incomplete")
    for name, info in members.items():
        path = PurePosixPath(name)
        if (
            path.is_absolute()
            or ".." in path.parts
            or path.parts[0] not in ("data", "db")
            or len(path.parts) < 2
            or not isinstance(info, dict)
            or not isinstance(info.get("size"), int)
            or not isinstance(info.get("sha256"), str)
        ):
            raise BackupError(f"{archive}: {MANIFEST} names an unsafe member {name!r}")
    return manifest
