"""``cattc import`` reads its file as a stream: flat memory whatever the file's length,
the encodings spreadsheets write, progress on stderr, and bounded reports and lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench.import_listings import write_jsonl
from node.cli.main import cli
from node.runtime import open_runtime
from node.services.importer import MAX_LINE_CHARS
from node.services.listings import MAX_PROBLEMS_KEPT
from tests.node.sample import sample_records
from tests.nodes import make_node_dir
from tests.paths import PROJECT_ROOT
from tests.security.procs import clean_env

SMALL, LARGE = 1_500, 6_000
# The old import held every parsed listing (some 10 KB each): 4,500 more lines cost
# ~45 MB more. Streaming keeps the peak within the allocator's noise.
GROWTH_LIMIT = 20 * 1024 * 1024


@pytest.fixture
def vn_dir(tmp_path: Path, database_url: Any) -> Path:
    data_dir, _, _ = make_node_dir(tmp_path, "vn", database_url("vn"))
    return data_dir


def _count(data_dir: Path) -> int:
    rt = open_runtime(data_dir)
    try:
        return sum(sum(v.values()) for v in rt.listings.counts().values())
    finally:
        rt.close()


def _titles(data_dir: Path) -> set[str]:
    rt = open_runtime(data_dir)
    try:
        return {s.record["title"]["en"] for s in rt.listings.iter_all()}
    finally:
        rt.close()


def _lines(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _peak_rss_of_import(data_dir: Path, path: Path, log: Path) -> tuple[int, int]:
    """(exit status, peak resident bytes) of ``cattc import`` in its own process."""
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli.main", "import", str(data_dir), str(path), "--json"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=clean_env(),
            cwd=PROJECT_ROOT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


def test_peak_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    large = write_jsonl(tmp_path / "large.jsonl", LARGE)
    small = tmp_path / "small.jsonl"
    with large.open(encoding="utf-8") as src, small.open("w", encoding="utf-8") as dst:
        dst.writelines(line for _, line in zip(range(SMALL), src, strict=False))
    peaks = {}
    for name, path in (("small", small), ("large", large)):
        data_dir, _, _ = make_node_dir(tmp_path / name, "th", f"sqlite:///{tmp_path / name}.db")
        status, peaks[name] = _peak_rss_of_import(data_dir, path, tmp_path / f"{name}.log")
        assert status == 0, (tmp_path / f"{name}.log").read_text()
        assert _count(data_dir) == (SMALL if name == "small" else LARGE)
    growth = peaks["large"] - peaks["small"]
    assert growth < GROWTH_LIMIT, f"peak RSS {peaks} grew by {growth / 2**20:.0f} MB"


# -- encodings ---------------------------------------------------------------------------


def _accented(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in records:
        title = dict(r["title"], en=r["title"]["en"] + " (café)")
        out.append(dict(r, title=title))
    return out


def test_latin1_file_is_one_error_line_then_imports_with_encoding(
    vn_dir: Path, tmp_path: Path
) -> None:
    records = _accented(sample_records("vn")[:3])
    # What a spreadsheet in a Western European locale writes: one byte per accent.
    text = "".join(json.dumps(r).replace("\\u00e9", "\u00e9") + "\n" for r in records)
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(text.encode("latin-1"))

    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(path)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.count("\n") == 1, result.output
    assert result.output.startswith("error: latin1.jsonl is not UTF-8 (byte 0xe9 on line 1")
    assert "--encoding latin-1" in result.output
    assert _count(vn_dir) == 0

    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(path), "--encoding", "latin-1"])
    assert result.exit_code == 0, result.output
    assert _titles(vn_dir) == {r["title"]["en"] for r in records}


@pytest.mark.parametrize(
    ("suffix", "encoding"),
    [(".jsonl", "utf-16"), (".jsonl", "utf-8-sig"), (".csv", "utf-16"), (".csv", "utf-8-sig")],
)
def test_byte_order_marks_say_the_encoding(
    vn_dir: Path, tmp_path: Path, suffix: str, encoding: str
) -> None:
    records = _accented(sample_records("vn")[:4])
    path = tmp_path / f"marked{suffix}"
    if suffix == ".csv":
        rows = ["id,owner,category,title.en,visibility"] + [
            f'{r["id"]},vn,{r["category"]},"{r["title"]["en"]}",{r["visibility"]}' for r in records
        ]
        # Only the required columns: every row is refused by validation, but each is read
        # whole and decoded (the title appears in no error); the header must parse.
        text = "\r\n".join(rows) + "\r\n"
    else:
        text = _lines(records)
    path.write_bytes(text.encode(encoding))
    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(path), "--json"])
    report = json.loads(result.stdout)
    if suffix == ".jsonl":
        assert result.exit_code == 0, result.output
        assert report["created"] == 4
        assert _titles(vn_dir) == {r["title"]["en"] for r in records}
    else:
        assert [p["line"] for p in report["problems"]] == [2, 3, 4, 5]
        assert all("id" in p and p["id"].startswith("vn-") for p in report["problems"])


def test_utf16_without_a_mark_is_named(vn_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "bare.jsonl"
    path.write_bytes(_lines(sample_records("vn")[:2]).encode("utf-16-le"))
    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(path)])
    assert result.exit_code == 1
    assert result.output.startswith("error: bare.jsonl: it holds NUL bytes")
    assert "--encoding utf-16-le (or utf-16-be)" in result.output
    big_endian = tmp_path / "bare-be.jsonl"
    big_endian.write_bytes(_lines(sample_records("vn")[:2]).encode("utf-16-be"))
    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(big_endian)])
    assert "--encoding utf-16-be (or utf-16-le)" in result.output
    binary = tmp_path / "sheet.csv"  # not text at all: no hint of UTF-16
    binary.write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 8)
    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(binary)])
    assert result.exit_code == 1
    assert result.output == (
        "error: sheet.csv: it holds NUL bytes and is not text: save it as CSV (UTF-8) or "
        "JSON Lines; a spreadsheet file (.xlsx, .ods) cannot be read as it is\n"
    )
    ok = CliRunner().invoke(cli, ["import", str(vn_dir), str(path), "--encoding", "utf-16-le"])
    assert ok.exit_code == 0, ok.output
    assert _count(vn_dir) == 2


@pytest.mark.parametrize("encoding", ["klingon", "zlib", "base64", "rot13", "undefined"])
def test_unknown_encoding_is_one_line(vn_dir: Path, tmp_path: Path, encoding: str) -> None:
    """Python's codecs that do not decode bytes to text are unknown here: zlib inflated a
    small file to gigabytes, rot13 and undefined failed with an unexpected error."""
    path = tmp_path / "x.jsonl"
    path.write_bytes(zlib.compress(b"{}\n" * 1000))
    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(path), "--encoding", encoding])
    assert result.exit_code == 1
    assert result.output == (
        f"error: x.jsonl: unknown text encoding '{encoding}': try utf-8, utf-16, latin-1 "
        "or cp1252\n"
    )
    assert _count(vn_dir) == 0


# -- progress, bounded lines and reports -------------------------------------------------


def test_progress_on_stderr_and_quiet_with_json(vn_dir: Path, tmp_path: Path) -> None:
    record = sample_records("vn")[0]
    path = tmp_path / "many.jsonl"
    # 2,000 lines: the first is good, the rest repeat it (each one a duplicate).
    path.write_text(_lines([record] * 2000), encoding="utf-8")
    text = CliRunner().invoke(cli, ["import", str(vn_dir), str(path)])
    progress = [line for line in text.stderr.splitlines() if line.startswith("importing")]
    assert progress[0] == "importing many.jsonl: 200 of 2,000 lines (10%)"
    assert progress[-1] == "importing many.jsonl: 2,000 of 2,000 lines (100%)"
    assert len(progress) == 10
    assert "1 created" in text.stdout

    quiet = CliRunner().invoke(cli, ["import", str(vn_dir), str(path), "--json"])
    assert quiet.stderr == ""
    report = json.loads(quiet.stdout)
    assert report["rejected"] == 1999
    assert len(report["problems"]) == MAX_PROBLEMS_KEPT
    assert report["problems"][0] == {"line": 2, "id": record["id"], "reason": "duplicate of line 1"}
    assert "... and 999 more bad record(s)" in text.stdout


def test_an_endless_line_is_one_bad_line(vn_dir: Path, tmp_path: Path) -> None:
    records = sample_records("vn")[:2]
    path = tmp_path / "long.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(records[0]) + "\n")
        fh.write('{"id": "' + "x" * (3 * MAX_LINE_CHARS) + '"}\n')
        fh.write(json.dumps(records[1]) + "\n")
    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(path), "--json"])
    report = json.loads(result.stdout)
    assert report["created"] == 2
    assert report["problems"] == [
        {"line": 2, "id": None, "reason": f"line is longer than {MAX_LINE_CHARS} characters"}
    ]


def test_a_broken_csv_row_is_named_and_the_rest_read(vn_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(
        "id,category,trl\n"
        'vn-off-0001,tech_offer,"' + "y" * (MAX_LINE_CHARS + 10) + '"\n'
        "vn-off-0002,tech_offer,high\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(path), "--json"])
    problems = json.loads(result.stdout)["problems"]
    assert [p["line"] for p in problems] == [2, 3], problems
    assert "longer than" in problems[0]["reason"]
    assert problems[1]["reason"] == "column 'trl': 'high' is not an integer"
