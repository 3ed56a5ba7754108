"""``cattc backup`` and ``cattc restore``: a running node's data directory and database
into one archive and back into a new directory and database, on both engines; a changed
archive and a target that is not empty are refused before anything is written."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import stat
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.cli.guard import terminated_cleanly
from node.config import load_config
from node.services import serve_lock
from node.services.backup import SERVE_LOCK, create_backup
from node.storage.models import PolicyVersionRow, ShareLogRow
from node.web.server import LOCK_FILE
from tests.conftest import DatabaseUrlFactory
from tests.federation.network import NodeFactory, allowed_for, held_by
from tests.hub.helpers import cattc, cattc_json, start_hub_network
from tests.node.sample import sample_records
from tests.nodes import RunningNode, make_node_dir, serve_node


async def listings_of(http: aiohttp.ClientSession, node: RunningNode) -> Any:
    status, body = await node.admin(http, "GET", "/admin/v1/listings?limit=1000")
    assert status == 200, body
    return body


async def identity_of(http: aiohttp.ClientSession, node: RunningNode) -> dict[str, Any]:
    async with http.get(node.url + "/.well-known/cattc-node") as resp:
        assert resp.status == 200
        doc: dict[str, Any] = await resp.json()
    return {k: v for k, v in doc.items() if k not in ("ts", "signatures", "base_url")}


def policies(node: RunningNode) -> list[tuple[int, str, bool]]:
    with Session(node.runtime.engine) as session:
        rows = session.scalars(select(PolicyVersionRow).order_by(PolicyVersionRow.version))
        return [(r.version, r.text, r.active) for r in rows]


def share_rows(node: RunningNode) -> list[tuple[str, str, int, str, int]]:
    with Session(node.runtime.engine) as session:
        stmt = select(ShareLogRow).order_by(ShareLogRow.id)
        return [(r.reader, r.listing_id, r.version, r.kind, r.at) for r in session.scalars(stmt)]


def test_lock_file_name() -> None:
    assert SERVE_LOCK == LOCK_FILE


def restore_args(db_engine_name: str, database_url: DatabaseUrlFactory, name: str) -> list[str]:
    """A new, empty database for the restore: SQLite in the data directory by default,
    a new PostgreSQL schema otherwise."""
    return [] if db_engine_name == "sqlite" else ["--database-url", database_url(name)]


async def test_round_trip(
    node_factory: NodeFactory,
    database_url: DatabaseUrlFactory,
    db_engine_name: str,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    net = await start_hub_network(node_factory, ["th"])
    th = net.nodes["th"]
    await net.hub.sync.sync_peer("th", force=True)  # th's share log: what the hub got
    await th.sync.sync_peer("cn", force=True)  # th holds the hub's summaries
    assert held_by(th, "cn"), "th received some of the hub's summaries"

    (th.data_dir / LOCK_FILE).write_text("")  # as 'cattc serve' holds it
    (th.data_dir / "locks").mkdir(exist_ok=True)
    (th.data_dir / "locks" / "cn.lock").write_text("")
    archive = tmp_path / "th.tar.gz"
    backup = await cattc("backup", th.data_dir, "--out", archive)  # th keeps running
    assert backup.exit_code == 0, backup.stderr
    assert "private signing key" in backup.stderr
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == "manifest.json"
    assert "data/signing_keys.json" in names and "data/node.toml" in names
    assert not any(n.startswith(("data/locks/", "data/serve.lock")) for n in names)
    if db_engine_name == "sqlite":
        assert "db/node.db" in names
    else:
        assert "db/listings.jsonl" in names and "db/search_fts.jsonl" in names

    target = tmp_path / "restored"
    args = restore_args(db_engine_name, database_url, "restored")
    report = await cattc_json("restore", archive, "--data-dir", target, *args)
    assert report["node_id"] == "th" and "signing_keys.json" in report["files"]
    assert stat.S_IMODE((target / "signing_keys.json").stat().st_mode) == 0o600

    config = load_config(target)
    restored = await serve_node(target, config, th.token)
    try:
        assert await identity_of(http, restored) == await identity_of(http, th)
        assert await listings_of(http, restored) == await listings_of(http, th)
        assert policies(restored) == policies(th)
        assert held_by(restored, "cn") == held_by(th, "cn")
        assert share_rows(restored) == share_rows(th)
        assert allowed_for(restored, "cn") == allowed_for(th, "cn")
        # The restored database takes new rows (its id sequences moved past the loaded).
        new = sample_records("th")[0]
        new.pop("id")
        status, body = await restored.admin(http, "POST", "/admin/v1/listings", json=new)
        assert status == 201, body
    finally:
        await restored.stop()


def rewrite(archive: Path, out: Path, change: dict[str, bytes]) -> None:
    """A copy of ``archive`` with the members in ``change`` replaced (same manifest)."""
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            fh = src.extractfile(member)
            assert fh is not None
            body = change.get(member.name, fh.read())
            member.size = len(body)
            dst.addfile(member, io.BytesIO(body))


async def test_changed_archive_refused(
    node_factory: NodeFactory,
    database_url: DatabaseUrlFactory,
    db_engine_name: str,
    tmp_path: Path,
) -> None:
    th = await node_factory("th")
    archive = tmp_path / "th.tar.gz"
    assert (await cattc("backup", th.data_dir, "--out", archive)).exit_code == 0
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        policy = tar.extractfile("data/policy.yaml").read()  # type: ignore[union-attr]
    args = restore_args(db_engine_name, database_url, "restored")
    target = tmp_path / "restored"

    tampered = tmp_path / "tampered.tar.gz"
    rewrite(archive, tampered, {"data/policy.yaml": policy + b"\n# changed\n"})
    result = await cattc("restore", tampered, "--data-dir", target, *args)
    assert result.exit_code == 1
    assert "was changed or damaged: data/policy.yaml does not match" in result.stderr
    assert not target.exists(), "nothing is written before the archive is checked"

    newer = tmp_path / "newer.tar.gz"
    rewrite(
        archive, newer, {"manifest.json": json.dumps({**manifest, "format_version": 9}).encode()}
    )
    result = await cattc("restore", newer, "--data-dir", target, *args)
    assert result.exit_code == 1 and "backup format 9" in result.stderr

    extra = dict(manifest["members"])
    del extra["data/policy.yaml"]
    dropped = tmp_path / "dropped.tar.gz"
    rewrite(
        archive, dropped, {"manifest.json": json.dumps({**manifest, "members": extra}).encode()}
    )
    result = await cattc("restore", dropped, "--data-dir", target, *args)
    assert result.exit_code == 1 and "unexpected member 'data/policy.yaml'" in result.stderr

    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive")
    result = await cattc("restore", junk, "--data-dir", target, *args)
    assert result.exit_code == 1 and "is not a readable .tar.gz backup" in result.stderr
    assert not target.exists()


async def test_non_empty_target_refused(
    node_factory: NodeFactory,
    database_url: DatabaseUrlFactory,
    db_engine_name: str,
    tmp_path: Path,
) -> None:
    th = await node_factory("th")
    archive = tmp_path / "th.tar.gz"
    assert (await cattc("backup", th.data_dir, "--out", archive)).exit_code == 0
    again = await cattc("backup", th.data_dir, "--out", archive)
    assert again.exit_code == 1 and "exists; choose a new file name" in again.stderr

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    args = restore_args(db_engine_name, database_url, "restored")
    result = await cattc("restore", archive, "--data-dir", busy, *args)
    assert result.exit_code == 1 and "is not empty" in result.stderr and "--force" in result.stderr
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]

    if db_engine_name == "postgresql":
        # The node's own database is not empty: refused, even into a new directory.
        own = load_config(th.data_dir).database_url
        result = await cattc(
            "restore", archive, "--data-dir", tmp_path / "new", "--database-url", own
        )
        assert result.exit_code == 1 and "is not empty" in result.stderr
        assert not (tmp_path / "new").exists()

    forced = await cattc("restore", archive, "--data-dir", busy, *args, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert (busy / "node.toml").is_file() and (busy / "notes.txt").is_file()


async def test_restore_over_a_running_node_or_another_node_is_refused(
    node_factory: NodeFactory, tmp_path: Path
) -> None:
    """A server kept writing to the database a restore had replaced under it (SQLite: to
    the deleted file), and what it took then was lost at its restart; another node's
    backup silently gave a directory that node's identity and keys."""
    th = await node_factory("th")
    vn = await node_factory("vn")
    archive, other = tmp_path / "th.tar.gz", tmp_path / "vn.tar.gz"
    assert (await cattc("backup", th.data_dir, "--out", archive)).exit_code == 0
    assert (await cattc("backup", vn.data_dir, "--out", other)).exit_code == 0
    lock = serve_lock.take(th.data_dir)  # as cattc serve holds it
    before = sorted(p.name for p in th.data_dir.iterdir())
    try:
        result = await cattc("restore", archive, "--data-dir", th.data_dir, "--force")
    finally:
        os.close(lock)
    assert result.exit_code == 1
    assert f"cattc serve (pid {os.getpid()}) is running on {th.data_dir}" in result.stderr
    result = await cattc("restore", other, "--data-dir", th.data_dir, "--force")
    assert result.exit_code == 1, result.stderr
    assert "holds node 'th'; the archive is of node 'vn'" in result.stderr
    assert sorted(p.name for p in th.data_dir.iterdir()) == before
    assert load_config(th.data_dir).node_id == "th"


def test_a_backup_stopped_by_sigterm_leaves_nothing_behind(tmp_path: Path) -> None:
    """Python's default for SIGTERM ends the process at once: a backup stopped so (a
    cron job's ``timeout``) left its staging copy beside the archive, the private key and
    every table in it. Here the backup sends itself SIGTERM from its first progress line,
    in the middle of the database's copy."""
    data_dir, _, _ = make_node_dir(tmp_path, "th", "")
    with sqlite3.connect(data_dir / "node.db") as db:  # past 10,000 pages: progress lines
        db.execute("INSERT INTO meta (key, value) VALUES ('filler', ?)", ("x" * (48 << 20),))
    out_dir = tmp_path / "backups"
    out_dir.mkdir()
    lines: list[str] = []

    def progress(line: str) -> None:
        lines.append(line)
        assert any(out_dir.iterdir())  # the staging copy is there now
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), terminated_cleanly():
        create_backup(data_dir, out_dir / "th.tar.gz", progress=progress)
    assert lines and lines[0].startswith("database: ")
    assert list(out_dir.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == before


async def test_engine_mismatch_refused(
    node_factory: NodeFactory, db_engine_name: str, tmp_path: Path
) -> None:
    th = await node_factory("th")
    archive = tmp_path / "th.tar.gz"
    assert (await cattc("backup", th.data_dir, "--out", archive)).exit_code == 0
    other = (
        "postgresql://u@127.0.0.1/x"
        if db_engine_name == "sqlite"
        else "sqlite:///" + str(tmp_path / "x.db")
    )
    result = await cattc("restore", archive, "--data-dir", tmp_path / "r", "--database-url", other)
    assert result.exit_code == 1 and f"restore it into {db_engine_name}" in result.stderr
    assert not (tmp_path / "r").exists()


async def test_bad_input_refused(node_factory: NodeFactory, tmp_path: Path) -> None:
    th = await node_factory("th")
    not_a_node = await cattc("backup", tmp_path, "--out", tmp_path / "x.tar.gz")
    assert not_a_node.exit_code == 1
    assert "is not a node data directory (no node.toml)" in not_a_node.stderr
    nowhere = await cattc("backup", th.data_dir, "--out", tmp_path / "no" / "x.tar.gz")
    assert nowhere.exit_code == 1 and "is not a directory; create it first" in nowhere.stderr
    missing = await cattc("restore", tmp_path / "none.tar.gz", "--data-dir", tmp_path / "r")
    assert missing.exit_code == 1 and "none.tar.gz is not a file" in missing.stderr
    assert not (tmp_path / "r").exists()


def test_sqlite_copy_while_the_node_writes(tmp_path: Path) -> None:
    """The SQLite copy is consistent while another connection keeps writing."""
    data_dir, _, _ = make_node_dir(tmp_path, "th", "")
    db = data_dir / "node.db"
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=30)
        while not stop.is_set():
            conn.execute(
                "INSERT INTO changes (listing_id, version, kind, at) VALUES ('x', 1, 'upsert', 0)"
            )
            written[0] += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while written[0] < 200:  # the writer is under way
            assert time.monotonic() < deadline, "the writer did not start"
            time.sleep(0.01)
        report = create_backup(data_dir, tmp_path / "th.tar.gz")
    finally:
        stop.set()
        thread.join()
    assert report.engine == "sqlite"
    with tarfile.open(tmp_path / "th.tar.gz") as tar:
        tar.extract("db/node.db", tmp_path / "out", filter="data")
    copy = sqlite3.connect(tmp_path / "out" / "db" / "node.db")
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        copied = copy.execute("SELECT count(*) FROM changes WHERE listing_id = 'x'").fetchone()[0]
    finally:
        copy.close()
    assert 200 <= copied <= written[0]
