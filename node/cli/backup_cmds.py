"""``cattc backup`` and ``cattc restore``: a node's data directory and database in one
archive, and back (``node.services.backup``, ``node.services.restore``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from node.cli.guard import terminated_cleanly
from node.cli.output import data_dir_argument, emit, fail, json_option
from node.config import ConfigError
from node.services.backup import BackupError, Report, create_backup
from node.services.restore import restore_backup
from node.storage.db import DatabaseUnavailable


def _progress(line: str) -> None:
    click.echo(line, err=True)


def _report(report: Report) -> dict[str, Any]:
    return {
        "archive": str(report.archive),
        "node_id": report.node_id,
        "engine": report.engine,
        "schema": report.revision,
        "database": report.database,
        "files": report.files,
        "tables": report.tables,
        **({"data_dir": str(report.data_dir)} if report.data_dir is not None else {}),
    }


@click.command()
@data_dir_argument
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The archive to write (a new file, e.g. node-2026-12-04.tar.gz).",
)
@json_option
def backup(data_dir: Path, out: Path, as_json: bool) -> None:
    """Write DATA_DIR (configuration, signing keys, policy) and the node's database to
    one .tar.gz archive, while the node may keep running.

    The archive holds the node's PRIVATE signing key: it is written readable by you
    only (mode 0600); keep it as safe as the data directory itself."""
    try:
        with terminated_cleanly():
            report = create_backup(data_dir, out, progress=_progress)
    except (BackupError, ConfigError, DatabaseUnavailable) as exc:
        fail(str(exc))
    click.echo(
        f"warning: {out} holds the node's private signing key; keep it safe (mode 0600)",
        err=True,
    )
    emit(as_json, _report(report), _render_backup)


def _render_backup(data: dict[str, Any]) -> str:
    rows = sum(data["tables"].values())
    db = f"{len(data['tables'])} tables, {rows} rows" if data["tables"] else "the SQLite database"
    return (
        f"wrote {data['archive']}: node {data['node_id']}, {len(data['files'])} files of the "
        f"data directory and {db} ({data['engine']}, schema {data['schema']})"
    )


@click.command()
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE")
@click.option(
    "--data-dir",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The data directory to restore into (new or empty).",
)
@click.option(
    "--database-url",
    default=None,
    help="The database to restore into (empty); by default the archive's own PostgreSQL "
    "database, or SQLite in the data directory.",
)
@click.option(
    "--force", is_flag=True, help="Overwrite a data directory or database that is not empty."
)
@json_option
def restore(
    archive: Path, data_dir: Path, database_url: str | None, force: bool, as_json: bool
) -> None:
    """Restore a node from FILE (made by 'cattc backup') into an empty data directory
    and database, after checking every file of the archive against its manifest."""
    try:
        with terminated_cleanly():
            report = restore_backup(
                archive, data_dir, database_url=database_url, force=force, progress=_progress
            )
    except (BackupError, DatabaseUnavailable) as exc:
        fail(str(exc))
    emit(as_json, _report(report), _render_restore)


def _render_restore(data: dict[str, Any]) -> str:
    lines = [
        f"restored node {data['node_id']} from {data['archive']} into {data['data_dir']}",
        f"  files: {', '.join(data['files'])}",
        f"  database: {data['database']} (schema {data['schema']})",
    ]
    if data["tables"]:
        rows = sum(data["tables"].values())
        lines.append(f"  {len(data['tables'])} tables, {rows} rows")
    lines.append(f"start it with: cattc serve {data['data_dir']}")
    return "\n".join(lines)
