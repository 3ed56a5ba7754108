"""Splitting an import body that arrives in chunks into one JSON text per record.

The admin import route takes JSON Lines or one JSON array, and reads the body as it comes
rather than whole: ``RecordSplitter.feed`` takes each chunk of bytes and returns the
records it completed, each bounded in length (a longer one comes out as a
``RecordError``), so the route holds one chunk and one batch of records at a time.
The splitter only finds where records start and end; each is parsed on its own by
``importer.parse_record``, so a bad one is one bad line, never the whole body.

Structural bytes (``[ ] { } , "`` and ``\\``) are ASCII, and UTF-8 never uses ASCII
bytes inside a multi-byte character, so the array can be split before it is decoded.
"""

from __future__ import annotations

import codecs
import re

from node.services.importer import MAX_LINE_CHARS, RecordError

Piece = bytes | RecordError
_IN_STRING = re.compile(rb'["\\]')
_STRUCTURE = re.compile(rb'["\[\]{},]')
_WHITESPACE = b" \t\r\n"


class BrokenBody(RecordError):
    """The body's structure is broken (a JSON array cut or padded): nothing after the
    point named can be read."""


class RecordSplitter:
    """JSON Lines or one JSON array, decided by the first byte that is not whitespace.

    ``feed`` and ``close`` return ``(number, piece)`` pairs: for JSON Lines the number is
    the line, for an array the element's position (from 1).
    """

    def __init__(self, limit: int = MAX_LINE_CHARS) -> None:
        self.limit = limit
        self.mode: str | None = None  # "lines" or "array"
        self.head = b""
        self.number = 0
        # JSON Lines
        self.buf = bytearray()
        self.too_long = False
        # array
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.done = False
        self.ignore_rest = False

    def feed(self, data: bytes) -> list[tuple[int, Piece]]:
        if self.mode is None:
            data = self.head + data
            text = data.removeprefix(codecs.BOM_UTF8).lstrip(_WHITESPACE)
            if not text:
                self.head = data
                return []
            self.mode = "array" if text.startswith(b"[") else "lines"
            self.head = b""
            data = text if self.mode == "array" else data.removeprefix(codecs.BOM_UTF8)
        if self.mode == "array":
            return self._feed_array(data)
        return self._feed_lines(data)

    def close(self) -> list[tuple[int, Piece]]:
        if self.mode == "lines":
            return self._feed_lines(b"\n") if self.buf or self.too_long else []
        if self.mode == "array" and not self.done and not self.ignore_rest:
            self.number += 1
            return [(self.number, BrokenBody("the JSON array ends before its closing ']'"))]
        return []

    # -- JSON Lines ------------------------------------------------------------------------
    def _feed_lines(self, data: bytes) -> list[tuple[int, Piece]]:
        out: list[tuple[int, Piece]] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            part = data[start:] if end < 0 else data[start:end]
            if not self.too_long:
                if len(self.buf) + len(part) > self.limit:
                    self.too_long = True
                    self.buf.clear()
                else:
                    self.buf += part
            if end < 0:
                return out
            self.number += 1
            if self.too_long:
                out.append((self.number, RecordError(f"line is longer than {self.limit} bytes")))
            elif self.buf.strip():
                out.append((self.number, bytes(self.buf)))
            self.buf.clear()
            self.too_long = False
            start = end + 1

    # -- one JSON array --------------------------------------------------------------------
    def _feed_array(self, data: bytes) -> list[tuple[int, Piece]]:
        out: list[tuple[int, Piece]] = []
        if self.ignore_rest:
            return out
        pos = 0
        if self.escaped and data:
            self._keep(data[:1])
            self.escaped = False
            pos = 1
        while pos < len(data):
            if self.done:
                if data[pos:].strip(_WHITESPACE):
                    self.number += 1
                    out.append((self.number, BrokenBody("text after the JSON array's ']'")))
                    self.ignore_rest = True
                return out
            if self.in_string:
                found = _IN_STRING.search(data, pos)
                if found is None:
                    self._keep(data[pos:])
                    return out
                at = found.start()
                if data[at] == 0x5C:  # backslash: the next byte is escaped
                    self._keep(data[pos : at + 2])
                    if at + 1 >= len(data):
                        self.escaped = True
                    pos = at + 2
                    continue
                self._keep(data[pos : at + 1])
                self.in_string = False
                pos = at + 1
                continue
            found = _STRUCTURE.search(data, pos)
            if found is None:
                self._keep(data[pos:])
                return out
            at = found.start()
            byte = data[at : at + 1]
            if self.depth == 0:
                if byte != b"[" or data[pos:at].strip(_WHITESPACE):
                    self.number += 1
                    out.append((self.number, BrokenBody("the body is not one JSON array")))
                    self.ignore_rest = True
                    return out
                self.depth = 1
                pos = at + 1
                continue
            if self.depth == 1 and byte in (b",", b"]"):
                self._keep(data[pos:at])
                element = self.buf.strip(_WHITESPACE)
                if element or byte == b"," or self.number:
                    self.number += 1
                    out.append((self.number, self._element(element)))
                self.buf.clear()
                self.too_long = False
                if byte == b"]":
                    self.depth = 0
                    self.done = True
                pos = at + 1
                continue
            self._keep(data[pos : at + 1])
            if byte == b'"':
                self.in_string = True
            elif byte in (b"[", b"{"):
                self.depth += 1
            elif byte in (b"]", b"}"):
                self.depth -= 1
            pos = at + 1
        return out

    def _keep(self, part: bytes) -> None:
        if self.too_long:
            return
        if len(self.buf) + len(part) > self.limit:
            self.too_long = True
            self.buf.clear()
            return
        self.buf += part

    def _element(self, element: bytearray) -> Piece:
        if self.too_long:
            return RecordError(f"element is longer than {self.limit} bytes")
        if not element:
            return BrokenBody("an empty array element (two commas, or one before ']')")
        return bytes(element)
