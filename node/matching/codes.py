"""Taxonomy codes as integers, so that code overlap is computed for many pairs at once.

The IPC hierarchy is in the symbol itself: section = 1st character, class = 3 characters,
subclass = 4 characters ("A01G" is in class "A01", section "A"); a group ("A01G 9/14")
counts as its subclass. ISIC Rev.4 divisions are two digits, and each division belongs to
one section letter by a fixed range table. So the matcher needs no taxonomy file at run
time; the tests check these rules against the IPC and ISIC files in ../shared. How close
two listings' codes are, for many pairs at once, is ``code_overlap``'s (numpy).

Encodings (0 = absent, used as padding):
- IPC: ``section * 10_000 + class_number * 100 + subclass_letter`` with section A=1..H=8
  and letter A=1..Z=26; a class-only code has letter 0, a section-only code class 0.
- ISIC: ``section * 100 + division`` with section A=1..U=21; a section-only code has
  division 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_IPC = 4
MAX_ISIC = 3

_IPC = re.compile(r"^\s*([A-H])(?:(\d{2})([A-Z])?)?")
# ISIC Rev.4: the first division of each section, A..U.
ISIC_SECTIONS = "ABCDEFGHIJKLMNOPQRSTU"  # the letter of encoded section n is [n - 1]
_ISIC_SECTION_STARTS: tuple[int, ...] = (1, 5, 10, 35, 36, 41, 45, 49, 55, 58, 64, 68, 69, 77)
_ISIC_SECTION_STARTS += (84, 85, 86, 90, 94, 97, 99)


def ipc_code(symbol: str) -> int:
    """``"A01G 9/14"`` -> the integer of subclass A01G; 0 when not an IPC symbol."""
    match = _IPC.match(symbol.upper())
    if match is None:
        return 0
    section = ord(match.group(1)) - ord("A") + 1
    klass = int(match.group(2)) if match.group(2) else 0
    letter = ord(match.group(3)) - ord("A") + 1 if match.group(3) else 0
    return section * 10_000 + klass * 100 + letter


def ipc_symbol(code: int) -> str:
    """The symbol of an IPC integer, as deep as it goes: ``"A01G"``, ``"A01"`` or ``"A"``."""
    section, rest = divmod(code, 10_000)
    klass, letter = divmod(rest, 100)
    out = chr(ord("A") + section - 1)
    if klass:
        out += f"{klass:02d}"
        if letter:
            out += chr(ord("A") + letter - 1)
    return out


def ipc_parent(symbol: str) -> str | None:
    """The parent in the IPC hierarchy: subclass -> class -> section -> None."""
    code = ipc_code(symbol)
    if code % 100:
        return ipc_symbol(code - code % 100)
    if code % 10_000:
        return ipc_symbol(code - code % 10_000)
    return None


def isic_section_of_division(division: int) -> int:
    """ISIC section number (A=1) of a division (1..99); 0 when out of range."""
    if not 1 <= division <= 99:
        return 0
    section = 0
    for index, start in enumerate(_ISIC_SECTION_STARTS, start=1):
        if division >= start:
            section = index
    return section


def isic_code(code: str) -> int:
    """``"01"``, ``"0111"`` -> section * 100 + division; ``"C"`` -> section * 100."""
    code = code.strip().upper()
    if len(code) == 1 and "A" <= code <= "U":
        return (ord(code) - ord("A") + 1) * 100
    if len(code) >= 2 and code[:2].isdigit():
        division = int(code[:2])
        section = isic_section_of_division(division)
        return section * 100 + division if section else 0
    return 0


def encode(values: Iterable[str], kind: str) -> tuple[int, ...]:
    """Distinct non-zero integer codes, in order, at most MAX_IPC / MAX_ISIC of them."""
    fn, cap = (ipc_code, MAX_IPC) if kind == "ipc" else (isic_code, MAX_ISIC)
    out: dict[int, None] = {}  # ordered, and found by hash: 20,592 codes took 6 s as a list
    for value in values:
        if isinstance(value, str):
            code = fn(value)
            if code:
                out[code] = None
                if len(out) == cap:
                    break
    return tuple(out)
