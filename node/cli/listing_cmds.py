"""``cattc import`` and ``cattc listings``: loading and inspecting a node's own listings."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Iterator
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
    stderr_is_tty,
    table,
)
from node.services.importer import (
    FileEncodingError,
    RecordError,
    check_suffix,
    read_records,
    scan_file,
)
from protocol.listing import CATEGORIES
from protocol.timeutil import ms_to_date

PROGRESS_THRESHOLD = 1000
PROGRESS_STEPS = 10  # lines printed when stderr is not a terminal


class Progress:
    """Lines read of the file's total, on stderr: a bar on a terminal, otherwise a plain
    line at every tenth (for logs); nothing for small files or with --json."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.label = label
        self.total = max(total, 1)
        self.enabled = enabled
        self.bar: Any = None
        self.done = 0
        self.step = 0

    def __enter__(self) -> Progress:
        if self.enabled and stderr_is_tty():
            self.bar = click.progressbar(
                length=self.total, label=self.label, file=sys.stderr, show_pos=True
            )
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def track(self, records: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        for line, record in records:
            if self.enabled and line > self.done:
                self._advance(min(line, self.total))
            yield line, record

    def _advance(self, line: int) -> None:
        if self.bar is not None:
            self.bar.update(line - self.done)
        else:
            step = line * PROGRESS_STEPS // self.total
            if step > self.step:
                self.step = step
                click.echo(
                    f"{self.label}: {line:,} of {self.total:,} lines ({line * 100 // self.total}%)",
                    err=True,
                )
        self.done = line


@click.command("import")
@data_dir_argument
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--strict",
    is_flag=True,
    help="Import nothing unless every record is good (one transaction: an interrupted "
    "import stores nothing).",
)
@click.option(
    "--encoding",
    metavar="NAME",
    help="Text encoding of FILE, e.g. latin-1 or cp1252 (default: UTF-8, or UTF-16 "
    "when FILE starts with its BOM).",
)
@json_option
def import_cmd(
    data_dir: Path, file: Path, strict: bool, encoding: str | None, as_json: bool
) -> None:
    """Validate and import listings from FILE (.jsonl or .csv), reading it line by line."""
    try:
        check_suffix(file)
        if file.exists() and not file.is_file():
            # It is read twice (checked, then imported): a pipe, <(zcat f.gz) say, gives
            # its lines once, and the second read waited for ever.
            fail(f"{file} is not a regular file (a pipe or a device): save it to a file first")
        scan = scan_file(file, encoding)
    except (RecordError, FileEncodingError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    show = scan.lines >= PROGRESS_THRESHOLD and not as_json
    with runtime(data_dir) as rt, Progress(f"importing {file.name}", scan.lines, show) as bar:
        try:
            records = bar.track(read_records(file, scan.encoding))
            report = rt.listings.import_records(records, strict=strict)
        except (RecordError, FileEncodingError) as exc:
            fail(str(exc))
        except UnicodeDecodeError as exc:
            fail(f"{file.name} changed while it was imported: {exc.reason}; import it again")
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
        if d["rejected"] > len(d["problems"]):
            lines.append(f"... and {d['rejected'] - len(d['problems'])} more bad record(s)")
        if not d["applied"]:
            lines.append(f"--strict: nothing imported, {d['rejected']} bad record(s)")
        else:
            lines.append(
                f"imported {d['file']}: {d['created']} created, {d['updated']} updated, "
                f"{d['unchanged']} unchanged, {d['rejected']} rejected"
            )
        return "\n".join(lines)

    emit(as_json, data, render)
    if report.rejected:
        raise SystemExit(1)


listings = data_dir_group("listings", "List, show, withdraw and export this node's own listings.")


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


@listings.command("export")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to FILE instead of standard output.",
    metavar="FILE",
)
@click.pass_obj
def export_cmd(data_dir: Path, out: Path | None) -> None:
    """Export the live listings as JSON Lines in the import format (cattc import reads it
    back: the same listings, versions and times)."""
    from node.console.export import export_lines

    with runtime(data_dir) as rt:
        if out is None:
            for line in export_lines(rt.listings):
                click.echo(line, nl=False)
            return
        count = 0
        try:
            with out.open("w", encoding="utf-8", newline="\n") as fh:
                for line in export_lines(rt.listings):
                    fh.write(line)
                    count += 1
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror}")
    click.echo(f"exported {count} listing(s) to {out}", err=True)
