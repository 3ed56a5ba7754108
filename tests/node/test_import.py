"""Bulk import through the CLI and the service: counts, bad lines, idempotence, CSV."""

from __future__ import annotations

import collections
import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from node.cli.main import cli
from node.runtime import open_runtime
from tests.node.sample import sample_records
from tests.nodes import make_node_dir
from tests.paths import DATA, require


@pytest.fixture
def vn_dir(tmp_path: Path, database_url: Any) -> Path:
    data_dir, _, _ = make_node_dir(tmp_path, "vn", database_url("vn"))
    return data_dir


def _counts(data_dir: Path) -> dict[str, int]:
    rt = open_runtime(data_dir)
    try:
        return {c: sum(v.values()) for c, v in rt.listings.counts().items()}
    finally:
        rt.close()


def _write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def test_vn_records_give_the_file_counts(vn_dir: Path, tmp_path: Path) -> None:
    records = sample_records("vn")
    expected = collections.Counter(r["category"] for r in records)
    path = _write_jsonl(tmp_path / "vn.jsonl", records)
    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(path)])
    assert result.exit_code == 0, result.output
    assert "21 created, 0 updated, 0 unchanged, 0 rejected" in result.output
    assert _counts(vn_dir) == dict(expected)


def test_whole_sample_file_refuses_other_owners_by_name(vn_dir: Path) -> None:
    path = require(DATA / "listings.jsonl")
    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(path), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["created"] == 21 and report["rejected"] == 260 - 21
    first = report["problems"][0]
    assert first["line"] == 1 and "owned by 'cn', not by this node ('vn')" in first["reason"]


def test_three_broken_lines_are_named_and_good_ones_kept(vn_dir: Path, tmp_path: Path) -> None:
    records: list[Any] = sample_records("vn")
    broken_trl = dict(records[2], trl=0)
    no_title = {k: v for k, v in records[5].items() if k != "title"}
    records[2] = broken_trl
    records[5] = no_title
    records.insert(9, '{"id": "vn-off-0099", "category": ')  # truncated line
    path = _write_jsonl(tmp_path / "broken.jsonl", records)

    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(path), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    problems = {p["line"]: p["reason"] for p in report["problems"]}
    assert sorted(problems) == [3, 6, 10]
    assert "'trl'" in problems[3]
    assert "'title'" in problems[6]
    assert "not valid JSON" in problems[10]
    assert report["created"] == 21 - 2
    assert sum(_counts(vn_dir).values()) == 19

    text = CliRunner().invoke(cli, ["import", str(vn_dir), str(path)]).output
    assert "line 3: vn-off-0003: field 'trl'" in text


def test_strict_imports_nothing_when_any_line_is_bad(vn_dir: Path, tmp_path: Path) -> None:
    records: list[Any] = sample_records("vn")
    records[0] = dict(records[0], visibility="secret")
    path = _write_jsonl(tmp_path / "strict.jsonl", records)
    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(path), "--strict"])
    assert result.exit_code == 1
    assert "--strict: nothing imported, 1 bad record(s)" in result.output
    assert _counts(vn_dir) == {}


def test_reimport_changes_no_version_and_edit_bumps_one(vn_dir: Path, tmp_path: Path) -> None:
    records = sample_records("vn")
    path = _write_jsonl(tmp_path / "vn.jsonl", records)
    runner = CliRunner()
    assert runner.invoke(cli, ["import", str(vn_dir), str(path)]).exit_code == 0
    rt = open_runtime(vn_dir)
    before = {s.id: s.record["version"] for s in rt.listings.iter_all()}
    head = rt.listings.head()
    rt.close()

    again = runner.invoke(cli, ["import", str(vn_dir), str(path)])
    assert "0 created, 0 updated, 21 unchanged" in again.output

    records[0]["summary"] += " Updated."
    _write_jsonl(path, records)
    edited = runner.invoke(cli, ["import", str(vn_dir), str(path)])
    assert "0 created, 1 updated, 20 unchanged" in edited.output
    rt = open_runtime(vn_dir)
    after = {s.id: s.record["version"] for s in rt.listings.iter_all()}
    assert rt.listings.head() == head + 1
    rt.close()
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {records[0]["id"]} and after[records[0]["id"]] == before[records[0]["id"]] + 1


def _flatten(record: dict[str, Any]) -> dict[str, str]:
    row: dict[str, str] = {}
    for key, value in record.items():
        if isinstance(value, dict) and key in {"title", "contact", "rights", "organization"}:
            for sub, v in value.items():
                row[f"{key}.{sub}"] = (
                    ";".join(v)
                    if isinstance(v, list)
                    else str(v).lower()
                    if isinstance(v, bool)
                    else str(v)
                )
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            row[key] = json.dumps(value)
        elif isinstance(value, list):
            row[key] = ";".join(value)
        elif isinstance(value, bool):
            row[key] = str(value).lower()
        elif value is not None:
            row[key] = str(value)
    return row


def test_csv_import_matches_jsonl(vn_dir: Path, tmp_path: Path) -> None:
    records = sample_records("vn")
    rows = [_flatten(r) for r in records]
    columns = sorted({k for r in rows for k in r})
    path = tmp_path / "vn.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(path)])
    assert result.exit_code == 0, result.output
    rt = open_runtime(vn_dir)
    stored = {s.id: s.record for s in rt.listings.iter_all()}
    rt.close()
    assert len(stored) == 21
    from node.services.validation import validate_record
    from protocol.listing import listing_to_wire

    for r in records:
        assert stored[r["id"]] == listing_to_wire(validate_record(r))


def test_csv_bad_cell_is_reported_with_its_line(vn_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,category,trl\nvn-off-0001,tech_offer,high\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(path)])
    assert result.exit_code == 1
    assert "line 2: -: column 'trl': 'high' is not an integer" in result.output


def test_unsupported_file_type(vn_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "listings.xml"
    path.write_text("<x/>")
    result = CliRunner().invoke(cli, ["import", str(vn_dir), str(path)])
    assert result.exit_code == 1
    assert result.output.startswith("error: unsupported file type '.xml'")
