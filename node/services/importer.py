"""Reading listing files for import: JSON Lines (the sample format) and CSV.

Both readers yield ``(line number, record)`` where a record that cannot even be parsed is
an exception carrying the reason, so the import can report it and go on with the rest.

CSV: one listing per row, columns named like the JSONL fields; nested fields with dots
(``organization.name``, ``contact.email``, ``title.vi``, ``rights.ip_owner``); list cells
separated by ``;``; a cell starting with ``[`` or ``{`` is read as JSON; integers and
``true``/``false`` are converted for the fields that hold them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAX_LINE_BYTES = 256 * 1024

LIST_FIELDS = frozenset(
    {
        "keywords",
        "ipc",
        "isic",
        "partnership",
        "target_countries",
        "share_with",
        "sectors",
        "languages",
        "fields",
        "related_listings",
        "rights.ip_owner",
        "rights.attribution",
    }
)
INT_FIELDS = frozenset({"version", "trl", "trl_min", "capacity", "value_usd"})
BOOL_FIELDS = frozenset({"rights.name_logo_consent", "registration_open"})


class RecordError(ValueError):
    """A line that is not a record at all (bad JSON, bad CSV cell)."""


def read_jsonl_lines(lines: Iterator[str]) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if len(text) > MAX_LINE_BYTES:
            yield number, RecordError(f"line is longer than {MAX_LINE_BYTES} bytes")
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, RecordError(f"not valid JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(record, dict):
            yield number, RecordError("a line must hold one JSON object")
            continue
        yield number, record


def _cell(name: str, raw: str) -> Any:
    text = raw.strip()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise RecordError(f"column '{name}': not valid JSON") from exc
    if name in LIST_FIELDS:
        if name == "rights.attribution" and text == "declined":
            return "declined"
        return [part.strip() for part in text.split(";") if part.strip()]
    if name in INT_FIELDS:
        try:
            return int(text)
        except ValueError as exc:
            raise RecordError(f"column '{name}': {text!r} is not an integer") from exc
    if name in BOOL_FIELDS:
        if text.lower() not in {"true", "false", "1", "0", "yes", "no"}:
            raise RecordError(f"column '{name}': {text!r} is not true or false")
        return text.lower() in {"true", "1", "yes"}
    return text


def csv_row_to_record(row: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, raw in row.items():
        if name is None:
            raise RecordError("the row has more cells than the header has columns")
        if raw is None or raw.strip() == "":
            continue
        value = _cell(name, raw)
        target = record
        parts = name.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise RecordError(f"column '{name}' conflicts with column '{part}'")
        target[parts[-1]] = value
    return record


def read_csv_text(text: str) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        line = reader.line_num
        try:
            yield line, csv_row_to_record(row)
        except RecordError as exc:
            yield line, exc


def read_records(path: Path) -> Iterator[tuple[int, Any]]:
    """Records of a .jsonl or .csv file, by extension."""
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        with path.open(encoding="utf-8") as fh:
            yield from read_jsonl_lines(iter(fh))
    elif suffix == ".csv":
        yield from read_csv_text(path.read_text(encoding="utf-8-sig"))
    else:
        raise RecordError(f"unsupported file type '{suffix}': use .jsonl or .csv")


def count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh)
