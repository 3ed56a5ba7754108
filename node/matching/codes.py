"""Taxonomy codes as integers, so that code overlap is computed for many pairs at once.

The IPC hierarchy is in the symbol itself: section = 1st character, class = 3 characters,
subclass = 4 characters ("A01G" is in class "A01", section "A"); a group ("A01G 9/14")
counts as its subclass. ISIC Rev.4 divisions are two digits, and each division belongs to
one section letter by a fixed range table. So the matcher needs no taxonomy file at run
time; the tests check these rules against the IPC and ISIC files in ../shared.

Encodings (0 = absent, used as padding):
- IPC: ``section * 10_000 + class_number * 100 + subclass_letter`` with section A=1..H=8
  and letter A=1..Z=26; a class-only code has letter 0, a section-only code class 0.
- ISIC: ``section * 100 + division`` with section A=1..U=21; a section-only code has
  division 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

IPC_SUBCLASS, IPC_CLASS, IPC_SECTION = 1.0, 0.5, 0.2
ISIC_DIVISION, ISIC_SECTION = 1.0, 0.3
MAX_IPC = 4
MAX_ISIC = 3

_IPC = re.compile(r"^\s*([A-H])(?:(\d{2})([A-Z])?)?")
# ISIC Rev.4: the first division of each section, A..U.
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
    out: list[int] = []
    for value in values:
        if isinstance(value, str):
            code = fn(value)
            if code and code not in out:
                out.append(code)
    return tuple(out[:cap])


def _hierarchy(
    req: npt.NDArray[np.int32],
    cand: npt.NDArray[np.int32],
    levels: tuple[tuple[int, int, float], ...],
) -> npt.NDArray[np.float32]:
    """Best shared level per request code, combined as ``0.6 * best + 0.4 * mean over the
    request's codes``. ``levels``: (divisor, modulus for "this level is present", weight),
    coarse to fine. Either side may have one row (broadcast against the other's rows)."""
    n = max(len(req), len(cand))
    # Columns contiguous (a pair's codes are a row), and the coarse-to-fine weights rise,
    # so a finer level's hit overwrites a coarser one's in place; no temporaries per hit.
    keys_r = [np.ascontiguousarray(_level_keys(req, d, m).T) for d, m, _ in levels]
    keys_c = [np.ascontiguousarray(_level_keys(cand, d, m).T) for d, m, _ in levels]
    cand_cols = np.flatnonzero(cand.any(axis=0)).tolist()
    req_cols = np.flatnonzero(req.any(axis=0)).tolist()
    total = np.zeros(n, dtype=np.float32)
    top = np.zeros(n, dtype=np.float32)
    best = np.empty(n, dtype=np.float32)
    hit = np.empty(n, dtype=np.bool_)
    for i in req_cols:
        best.fill(0.0)
        for (_, _, weight), kr, kc in zip(levels, keys_r, keys_c, strict=True):
            left = kr[i]  # one number when one request is scored against many
            nonzero = left != 0
            if not nonzero.any():
                continue
            for j in cand_cols:
                np.equal(left, kc[j], out=hit)
                hit &= nonzero
                np.copyto(best, np.float32(weight), where=hit)
        total += best
        np.maximum(top, best, out=top)
    present = np.maximum((req > 0).sum(axis=1), 1)
    out: npt.NDArray[np.float32] = (0.6 * top + 0.4 * total / present).astype(np.float32)
    return out


def _level_keys(codes: npt.NDArray[np.int32], divisor: int, modulus: int) -> npt.NDArray[np.int32]:
    """The code cut to one level (0 where the code does not go that deep)."""
    keys = codes // divisor
    if modulus:
        keys = np.where(keys % modulus > 0, keys, 0)
    return keys.astype(np.int32)


def ipc_similarity(
    req: npt.NDArray[np.int32], cand: npt.NDArray[np.int32]
) -> npt.NDArray[np.float32]:
    """Hierarchical IPC overlap of each pair in [0, 1]: same subclass 1.0, same class 0.5,
    same section 0.2. Shapes (P, MAX_IPC) -> (P,); one side may have a single row."""
    levels = ((10_000, 0, IPC_SECTION), (100, 100, IPC_CLASS), (1, 100, IPC_SUBCLASS))
    return _hierarchy(req, cand, levels)


def isic_similarity(
    req: npt.NDArray[np.int32], cand: npt.NDArray[np.int32]
) -> npt.NDArray[np.float32]:
    """ISIC overlap at division level (1.0), or same section only (0.3)."""
    levels = ((100, 0, ISIC_SECTION), (1, 100, ISIC_DIVISION))
    return _hierarchy(req, cand, levels)
