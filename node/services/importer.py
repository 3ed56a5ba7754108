"""Reading listing files for import, one record at a time: JSON Lines (the sample format)
and CSV.

A center's catalogue can be a million lines, so nothing here holds a whole file: lines
and rows are read one by one, each bounded in length, and handed on as ``(line number,
record)`` where a record that cannot even be parsed is a ``RecordError`` carrying the
reason, so the import can report it and go on with the rest. Each JSON text goes through
``protocol.safe_json`` (bounded depth and number length), so a hostile line is one bad
line, never a crash.

Spreadsheets save text as UTF-8 (often with a byte-order mark), UTF-16 (with one) or in a
legacy code page such as Latin-1. ``scan_file`` reads the file once as bytes before the
import: it finds the encoding (a byte-order mark, or UTF-8 checked to the end), counts the
lines for the progress display, and refuses a file it cannot decode with one message
naming the byte, its line and the ``--encoding`` to try.

CSV: one listing per row, columns named like the JSONL fields; nested fields with dots
(``organization.name``, ``contact.email``, ``title.vi``, ``rights.ip_owner``); list cells
separated by ``;``; a cell starting with ``[`` or ``{`` is read as JSON; integers and
``true``/``false`` are converted for the fields that hold them.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from protocol import safe_json

MAX_LINE_CHARS = 256 * 1024
MAX_INT_DIGITS = 16  # 2**53 has 16 digits; longer integers cannot be signed anyway
SUFFIXES = frozenset({".jsonl", ".ndjson", ".json", ".csv"})
_SCAN_CHUNK = 1024 * 1024
_BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

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
    """A line that is not a record at all (bad JSON, bad CSV cell, too long)."""


class FileEncodingError(ValueError):
    """The file cannot be read as text in the encoding found or asked for."""


@dataclass(frozen=True)
class FileScan:
    """What one pass over a file's bytes found: how to decode it, and its size."""

    encoding: str
    lines: int
    size: int


# -- one JSON text -----------------------------------------------------------------------
def parse_record(text: str | bytes) -> dict[str, Any]:
    """One listing from one JSON text, or ``RecordError`` saying why not."""
    try:
        record = safe_json.loads(text)
    except safe_json.JsonInputError as exc:
        raise RecordError(f"not valid JSON: {exc.message}") from None
    if not isinstance(record, dict):
        raise RecordError("a line must hold one JSON object")
    return record


def read_jsonl_lines(
    lines: Iterable[str | bytes | RecordError], start: int = 1
) -> Iterator[tuple[int, Any]]:
    """Records of JSON Lines; ``lines`` may be text or UTF-8 bytes, each bounded."""
    for number, line in enumerate(lines, start=start):
        if isinstance(line, RecordError):
            yield number, line
            continue
        text = line.strip()
        if not text:
            continue
        if len(text) > MAX_LINE_CHARS:
            yield number, RecordError(f"line is longer than {MAX_LINE_CHARS} characters")
            continue
        try:
            yield number, parse_record(text)
        except RecordError as exc:
            yield number, exc


# -- encodings ---------------------------------------------------------------------------
def _codec(name: str) -> str:
    """The codec ``name`` if it decodes bytes to text. Python also knows codecs of bytes
    to bytes (zlib, base64, hex), of text to text (rot13) and one that refuses all
    (undefined): each would fail an import later, zlib after inflating a small file to
    gigabytes."""
    try:
        info = codecs.lookup(name)
        data = info.encode('{"id": "x"}\n')[0]
        text = info.decode(data)[0] if isinstance(data, bytes) else None
    except Exception:  # LookupError, or a codec that cannot read text
        text = None
    if text != '{"id": "x"}\n':
        raise FileEncodingError(
            f"unknown text encoding '{name}': try utf-8, utf-16, latin-1 or cp1252"
        ) from None
    return info.name


def _sniff(head: bytes) -> str:
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    if b"\x00" in head:
        raise FileEncodingError(_nul_reason(head))
    return "utf-8"


def _nul_reason(head: bytes) -> str:
    """Why a file holding NUL bytes is not read: UTF-16 without a byte-order mark (text
    in Latin letters has a NUL in every other byte) or not text at all."""
    sample = head[:4096]
    pairs = len(sample) // 2
    if pairs:
        for order, start in (("le", 1), ("be", 0)):
            if sample[start::2].count(0) >= 0.9 * pairs:
                other = "be" if order == "le" else "le"
                return (
                    "it holds NUL bytes, as UTF-16 without a byte-order mark does: "
                    f"run again with --encoding utf-16-{order} (or utf-16-{other})"
                )
    return (
        "it holds NUL bytes and is not text: save it as CSV (UTF-8) or JSON Lines; "
        "a spreadsheet file (.xlsx, .ods) cannot be read as it is"
    )


def scan_file(path: Path, encoding: str | None = None) -> FileScan:
    """Decode ``path`` once, chunk by chunk, to check it and count its lines.

    ``encoding`` None means: a byte-order mark's, else UTF-8. Raises ``FileEncodingError``
    naming the first byte that does not decode, with its line.
    """
    lines = 0
    size = 0
    last = b"\n"
    with path.open("rb") as fh:
        head = fh.read(_SCAN_CHUNK)
        try:
            name = _codec(encoding) if encoding else _sniff(head)
        except FileEncodingError as exc:
            raise FileEncodingError(f"{path.name}: {exc}") from None
        decoder = codecs.getincrementaldecoder(name)(errors="strict")
        chunk = head
        while True:
            final = not chunk
            try:
                text = decoder.decode(chunk, final)
            except UnicodeDecodeError as exc:
                at = size - (len(exc.object) - len(chunk)) + exc.start
                raise _decode_error(path, name, encoding, exc, lines, at) from None
            lines += text.count("\n")
            size += len(chunk)
            if chunk:
                last = chunk
            if final:
                break
            chunk = fh.read(_SCAN_CHUNK)
    if size and not last.rstrip(b"\x00").endswith(b"\n"):
        lines += 1  # a last line without a newline
    return FileScan(encoding=name, lines=lines, size=size)


def _decode_error(
    path: Path,
    name: str,
    asked: str | None,
    exc: UnicodeDecodeError,
    lines_before: int,
    offset: int,
) -> FileEncodingError:
    data = bytes(exc.object)
    line = lines_before + data[: exc.start].count(b"\n") + 1
    byte = data[exc.start] if exc.start < len(data) else None
    what = f"byte 0x{byte:02x}" if byte is not None else "the file ends mid-character"
    where = f"{what} on line {line}, offset {offset}"
    if asked:
        return FileEncodingError(f"{path.name} is not valid {name}: {where}")
    return FileEncodingError(
        f"{path.name} is not UTF-8 ({where}); if it was saved as Latin-1 or Windows-1252, "
        "as spreadsheets often do, run again with --encoding latin-1 (or cp1252)"
    )


# -- bounded lines -------------------------------------------------------------------------
class BoundedLines:
    """Lines of a text file, each at most ``limit`` characters: a longer line is read
    past in pieces and comes out as a ``RecordError`` (or raised, with ``raise_long``, for
    readers such as ``csv`` that take strings only), so no line is ever held whole."""

    def __init__(self, fh: IO[str], limit: int = MAX_LINE_CHARS, raise_long: bool = False):
        self.fh = fh
        self.limit = limit
        self.raise_long = raise_long
        self.first = True
        self.number = 0  # lines read so far

    def __iter__(self) -> BoundedLines:
        return self

    def __next__(self) -> Any:
        line = self.fh.readline(self.limit + 1)
        if not line:
            raise StopIteration
        self.number += 1
        if self.first:
            self.first = False
            line = line.removeprefix("\ufeff")
        if len(line) <= self.limit or line.endswith("\n"):
            return line
        while line and not line.endswith("\n"):
            line = self.fh.readline(self.limit)
        error = RecordError(f"line is longer than {self.limit} characters")
        if self.raise_long:
            raise error
        return error


# -- CSV ---------------------------------------------------------------------------------
def _cell(name: str, raw: str) -> Any:
    text = raw.strip()
    if text.startswith(("[", "{")):
        try:
            return safe_json.loads(text)
        except safe_json.JsonInputError as exc:
            raise RecordError(f"column '{name}': not valid JSON: {exc.message}") from None
    if name in LIST_FIELDS:
        if name == "rights.attribution" and text == "declined":
            return "declined"
        return [part.strip() for part in text.split(";") if part.strip()]
    if name in INT_FIELDS:
        digits = text.lstrip("+-")
        if not digits.isdigit() or not digits.isascii() or len(digits) > MAX_INT_DIGITS:
            shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"
            raise RecordError(f"column '{name}': {shown!r} is not an integer")
        return int(text)
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


def read_csv_lines(lines: BoundedLines) -> Iterator[tuple[int, Any]]:
    """Records of CSV text; the line of each is the physical line its row ends on."""
    csv.field_size_limit(MAX_LINE_CHARS)
    reader = csv.reader(lines)
    header: list[str] | None = None
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except (csv.Error, RecordError) as exc:
            if header is None:
                raise RecordError(
                    f"line {lines.number}: the header row is unreadable: {exc}"
                ) from None
            yield lines.number, RecordError(f"not a valid CSV row: {exc}")
            continue
        if header is None:
            header = cells
            continue
        if not cells:
            continue
        row: dict[Any, Any] = dict(zip(header, cells, strict=False))
        if len(cells) > len(header):
            row[None] = cells[len(header) :]
        try:
            yield lines.number, csv_row_to_record(row)
        except RecordError as exc:
            yield lines.number, exc


# -- files ---------------------------------------------------------------------------------
def check_suffix(path: Path) -> None:
    if path.suffix.lower() not in SUFFIXES:
        raise RecordError(f"unsupported file type '{path.suffix}': use .jsonl or .csv")


def read_records(path: Path, encoding: str | None = None) -> Iterator[tuple[int, Any]]:
    """Records of a .jsonl or .csv file, by extension, read line by line.

    ``encoding`` None: a byte-order mark's, else UTF-8 (``scan_file`` checks it first).
    """
    check_suffix(path)
    if encoding is None:
        with path.open("rb") as fh:
            encoding = _sniff(fh.read(4))
    name = _codec(encoding)
    if path.suffix.lower() == ".csv":
        with path.open(encoding=name, newline="") as fh:
            yield from read_csv_lines(BoundedLines(fh, raise_long=True))
    else:
        with path.open(encoding=name) as fh:
            yield from read_jsonl_lines(BoundedLines(fh))
