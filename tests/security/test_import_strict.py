"""``cattc import --strict`` is all or nothing, even when the import dies part-way.

Two real ways to die: the database refuses a row in the middle (a trigger injects the
failure, as a full disk or a constraint would), and the process is killed (SIGKILL) while
it is storing. Either way no listing of the file is stored and the change log is empty.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import text

from bench.import_listings import write_jsonl
from node.cli.main import cli
from node.runtime import open_runtime
from tests.nodes import make_node_dir
from tests.paths import PROJECT_ROOT
from tests.security.procs import clean_env

# Beyond the old import's 2,000-record batch, so that it had committed one before failing.
LINES, FAIL_AT = 2_200, 2_150
KILL_LINES = 6_000


def _stored(data_dir: Path) -> tuple[int, int]:
    """(listings, change-log head) of the node."""
    rt = open_runtime(data_dir)
    try:
        listings = sum(sum(v.values()) for v in rt.listings.counts().values())
        return listings, rt.listings.head()
    finally:
        rt.close()


def _id_on_line(path: Path, line: int) -> str:
    with path.open(encoding="utf-8") as fh:
        for number, text_line in enumerate(fh, start=1):
            if number == line:
                return str(json.loads(text_line)["id"])
    raise AssertionError(f"{path} has no line {line}")


def _fail_inserts_of(data_dir: Path, listing_id: str, drop: bool = False) -> None:
    """A trigger that makes the database refuse one listing's insert (or its removal)."""
    rt = open_runtime(data_dir)
    try:
        with rt.engine.begin() as conn:
            if rt.engine.dialect.name == "sqlite":
                conn.execute(text("DROP TRIGGER IF EXISTS fail_import"))
                if not drop:
                    conn.execute(
                        text(
                            "CREATE TRIGGER fail_import BEFORE INSERT ON listings "
                            f"WHEN NEW.id = '{listing_id}' "
                            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
                        )
                    )
            else:
                conn.execute(text("DROP TRIGGER IF EXISTS fail_import ON listings"))
                if not drop:
                    conn.execute(
                        text(
                            "CREATE OR REPLACE FUNCTION fail_import() RETURNS trigger AS $$ "
                            f"BEGIN IF NEW.id = '{listing_id}' THEN "
                            "RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$ "
                            "LANGUAGE plpgsql"
                        )
                    )
                    conn.execute(
                        text(
                            "CREATE TRIGGER fail_import BEFORE INSERT ON listings "
                            "FOR EACH ROW EXECUTE FUNCTION fail_import()"
                        )
                    )
    finally:
        rt.close()


def test_a_database_failure_part_way_leaves_nothing(tmp_path: Path, database_url: Any) -> None:
    data_dir, _, _ = make_node_dir(tmp_path, "th", database_url("th"))
    path = write_jsonl(tmp_path / "listings.jsonl", LINES)
    _fail_inserts_of(data_dir, _id_on_line(path, FAIL_AT))

    result = CliRunner().invoke(cli, ["import", str(data_dir), str(path), "--strict", "--json"])
    assert _stored(data_dir) == (0, 0)
    assert result.exit_code != 0
    assert "injected failure" in result.output

    _fail_inserts_of(data_dir, "", drop=True)
    again = CliRunner().invoke(cli, ["import", str(data_dir), str(path), "--strict", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["created"] == LINES
    assert _stored(data_dir) == (LINES, LINES)


def _wait_for_line(proc: subprocess.Popen[bytes], wanted: bytes, deadline_s: float) -> None:
    """Read ``proc``'s stderr until a line containing ``wanted``; fail at the deadline."""
    assert proc.stderr is not None
    end = time.monotonic() + deadline_s
    seen = b""
    while wanted not in seen:
        left = end - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise AssertionError(f"no {wanted!r} on stderr in time; got {seen[-500:]!r}")
        ready, _, _ = select.select([proc.stderr], [], [], left)
        if ready:
            seen += os.read(proc.stderr.fileno(), 65536)


def test_a_kill_part_way_leaves_nothing(tmp_path: Path, database_url: Any) -> None:
    data_dir, _, _ = make_node_dir(tmp_path, "th", database_url("th"))
    path = write_jsonl(tmp_path / "listings.jsonl", KILL_LINES)
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli.main", "import", str(data_dir), str(path), "--strict"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=clean_env(),
        cwd=PROJECT_ROOT,
    )
    try:
        # Half the file read: three batches of 1,000 stored in the open transaction.
        _wait_for_line(proc, b"(50%)", deadline_s=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert _stored(data_dir) == (0, 0)

    # The database is usable at once: a later import stores and logs its listings.
    small = write_jsonl(tmp_path / "small.jsonl", 10)
    result = CliRunner().invoke(cli, ["import", str(data_dir), str(small), "--strict"])
    assert result.exit_code == 0, result.output
    assert _stored(data_dir) == (10, 10)
