"""``cattc import`` and ``cattc listings``: loading and inspecting a node's own listings."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from node.cli.output import (
    data_dir_argument,
    data_dir_group,
    emit,
    fail,
    json_option,
    runtime,
    table,
)
from node.services.importer import RecordError, count_lines, read_records
from protocol.listing import CATEGORIES
from protocol.timeutil import ms_to_date

PROGRESS_THRESHOLD = 1000


@click.command("import")
@data_dir_argument
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--strict", is_flag=True, help="Import nothing unless every record is good.")
@json_option
def import_cmd(data_dir: Path, file: Path, strict: bool, as_json: bool) -> None:
    """Validate and import listings from FILE (.jsonl or .csv)."""
    if file.suffix.lower() not in {".jsonl", ".ndjson", ".json", ".csv"}:
        fail(f"unsupported file type '{file.suffix}': use .jsonl or .csv")
    total = count_lines(file)
    show_progress = total >= PROGRESS_THRESHOLD and not as_json
    with runtime(data_dir) as rt:
        records: Iterator[tuple[int, Any]] = read_records(file)
        try:
            if show_progress:
                bar: Any = click.progressbar(
                    records, length=total, label="importing", file=sys.stderr
                )
                with bar as progress:
                    report = rt.listings.import_records(progress, strict=strict)
            else:
                report = rt.listings.import_records(records, strict=strict)
        except RecordError as exc:
            fail(str(exc))
    data = {
        "file": str(file),
        "applied": report.applied,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": report.rejected,
        "problems": [
            {"line": p.line, "id": p.listing_id, "reason": p.reason} for p in report.problems
        ],
    }

    def render(d: dict[str, Any]) -> str:
        lines = [f"line {p['line']}: {p['id'] or '-'}: {p['reason']}" for p in d["problems"]]
        if not d["applied"]:
            lines.append(f"--strict: nothing imported, {d['rejected']} bad record(s)")
        else:
            lines.append(
                f"imported {d['file']}: {d['created']} created, {d['updated']} updated, "
                f"{d['unchanged']} unchanged, {d['rejected']} rejected"
            )
        return "\n".join(lines)

    emit(as_json, data, render)
    if report.problems:
        raise SystemExit(1)


listings = data_dir_group("listings", "List, show and withdraw this node's own listings.")


@listings.command("list")
@click.option("--category", type=click.Choice(CATEGORIES), help="Only this category.")
@click.option("--withdrawn", is_flag=True, help="Include withdrawn listings.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@json_option
@click.pass_obj
def list_cmd(
    data_dir: Path, category: str | None, withdrawn: bool, limit: int, as_json: bool
) -> None:
    """List listings, one line each."""
    with runtime(data_dir) as rt:
        items = list(
            itertools.islice(
                (
                    s
                    for s in rt.listings.iter_all(include_withdrawn=withdrawn)
                    if category is None or s.record["category"] == category
                ),
                limit,
            )
        )
    data = [{**s.record, "withdrawn": s.withdrawn} for s in items]

    def render(rows: list[dict[str, Any]]) -> str:
        return table(
            ["id", "category", "v", "visibility", "expires", "title"],
            [
                (
                    r["id"] + (" (withdrawn)" if r["withdrawn"] else ""),
                    r["category"],
                    r["version"],
                    r["visibility"],
                    ms_to_date(r["expires"]),
                    r["title"]["en"][:60],
                )
                for r in rows
            ],
        )

    emit(as_json, data, render)


@listings.command("show")
@click.argument("listing_id")
@json_option
@click.pass_obj
def show_cmd(data_dir: Path, listing_id: str, as_json: bool) -> None:
    """Show one listing in full."""
    with runtime(data_dir) as rt:
        stored = rt.listings.get(listing_id)
    data = {"listing": stored.record, "withdrawn": stored.withdrawn}

    def render(d: dict[str, Any]) -> str:
        rec = d["listing"]
        width = max(len(k) for k in rec)
        lines = [f"{k.ljust(width)}  {v}" for k, v in rec.items()]
        if d["withdrawn"]:
            lines.insert(0, "WITHDRAWN")
        return "\n".join(lines)

    emit(as_json, data, render)


@listings.command("withdraw")
@click.argument("listing_id")
@json_option
@click.pass_obj
def withdraw_cmd(data_dir: Path, listing_id: str, as_json: bool) -> None:
    """Withdraw a listing: readers that hold it will be told to purge it."""
    with runtime(data_dir) as rt:
        result = rt.listings.withdraw(listing_id)
    emit(as_json, result, lambda d: f"withdrawn {d['id']} (version {d['version']})")
