"""Listing embeddings held as int8 codes and a scale per row.

A unit-length embedding ``v`` is kept as ``codes = rint(v / scale)`` (int8, its largest
component at +-127) and ``scale = max|v| / 127`` (float32): 388 bytes a listing at 384
dimensions, where float16 took 768 (154 MB at 200,000 listings, 768 MB at a million).
Measured on the sample's listings with e5, a cosine moves by 0.0003 on average (at most
0.0016) against the float32 vectors.

Codes are whole numbers, so a dot product of two rows' codes computed in float32 is exact
(each term is at most 127 x 127, the sum stays below 2^24), whatever the order of its sum:
a matrix product, one row against many, ``einsum`` over pairs all give the same number. A
cosine is that dot times ``scale_a * scale_b``, one float32 product each, so every route
gives the same cosine bit for bit. Rows without a vector are zero (codes and scale).
Conversion to float32 is done ``BLOCK`` rows at a time (one new listing against 100,000
stored: an int8 block converts in about half the time a float16 one took).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from node.matching.index import FloatArray, Growable, IntArray

QMAX = 127
# Rows converted to float32 at a time: 6 MB at 384 dimensions, which stay in the cache for
# the product (16,384 rows, 25 MB, took twice as long: 17 ms against 8 ms a 100,000 rows).
BLOCK = 4_096
# Pairs at a time: both sides' rows are converted, and the bulk ranking rescores in two
# threads at once (16,384 pairs took 50 MB a thread).
PAIR_BLOCK = 4_096


KEY_BYTES = 16
KEY_DTYPE = f"V{KEY_BYTES}"  # ``text_key``'s bytes, as one numpy item
# One kind's vectors as kept between processes: a key per slot, its codes, its scales.
HeldVectors = tuple[npt.NDArray[np.void], npt.NDArray[np.int8], npt.NDArray[np.float32]]


def text_key(kind: str, text: str) -> bytes:
    """What a vector is kept under between processes: the text that was encoded, and
    whether as a request (a query) or a candidate (a passage)."""
    role = b"query\0" if kind == "request" else b"passage\0"
    return hashlib.sha256(role + text.encode("utf-8", "surrogatepass")).digest()[:KEY_BYTES]


class Quantised(NamedTuple):
    """One embedding as held: its codes and its scale."""

    codes: npt.NDArray[np.int8]
    scale: np.float32


def quantise(vector: npt.ArrayLike) -> Quantised:
    """``vector`` (unit length) as int8 codes and a float32 scale."""
    v = np.asarray(vector, dtype=np.float32)
    top = float(np.abs(v).max()) if v.size else 0.0
    if not np.isfinite(top) or top == 0.0:
        return Quantised(np.zeros(v.shape, dtype=np.int8), np.float32(0.0))
    scale = np.float32(top / QMAX)
    codes = np.clip(np.rint(v / scale), -QMAX, QMAX).astype(np.int8)
    return Quantised(codes, scale)


class Vectors:
    """One kind's embeddings, a row per slot (see the module docstring)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.codes = Growable(np.int8, width=width)
        self.scales = Growable(np.float32)

    def __len__(self) -> int:
        return self.codes.n

    def append(self, row: Quantised | None) -> None:
        if row is None:
            self.codes.append(0)
            self.scales.append(0.0)
        else:
            self.codes.append(row.codes)
            self.scales.append(row.scale)

    def extend_empty(self, n: int) -> None:
        """``n`` rows without a vector."""
        self.codes.extend(np.zeros((n, self.width), dtype=np.int8))
        self.scales.extend(np.zeros(n, dtype=np.float32))

    def set(self, slot: int, row: Quantised) -> None:
        self.codes.set(slot, row.codes)
        self.scales.set(slot, row.scale)

    def row(self, slot: int) -> Quantised:
        return Quantised(self.codes.view[slot].copy(), np.float32(self.scales.view[slot]))

    def floats(self, slots: IntArray) -> FloatArray:
        """The codes of ``slots`` as float32 (whole numbers): dot products of these are
        exact."""
        out: FloatArray = self.codes.view[slots].astype(np.float32)
        return out

    def unit(self, slots: IntArray) -> FloatArray:
        """The vectors of ``slots`` (float32, about unit length; zero without one)."""
        out = self.floats(slots)
        out *= self.scales.view[slots][:, None]
        return out

    def against(self, query: Quantised, slots: IntArray) -> FloatArray:
        """Cosines of ``query`` with the rows ``slots``."""
        q = query.codes.astype(np.float32)
        dots = np.empty(len(slots), dtype=np.float32)
        for start in range(0, len(slots), BLOCK):
            block = slots[start : start + BLOCK]
            dots[start : start + len(block)] = self.codes.view[block].astype(np.float32) @ q
        return scaled(dots, query.scale, self.scales.view[slots])


def scaled(dots: FloatArray, scale_a: npt.ArrayLike, scale_b: npt.ArrayLike) -> FloatArray:
    """Cosines from exact code dots: ``dots * (scale_a * scale_b)`` in float32, the one
    formula of every route."""
    a = np.asarray(scale_a, dtype=np.float32)
    b = np.asarray(scale_b, dtype=np.float32)
    out: FloatArray = (dots * (a * b)).astype(np.float32, copy=False)
    return out


def pair_cosines(a: Vectors, ai: IntArray, b: Vectors, bi: IntArray) -> FloatArray:
    """Cosines of the pairs ``(a[ai[p]], b[bi[p]])``."""
    dots = np.empty(len(ai), dtype=np.float32)
    for start in range(0, len(ai), PAIR_BLOCK):
        stop = start + PAIR_BLOCK
        dots[start : start + len(ai[start:stop])] = np.einsum(
            "ij,ij->i", a.floats(ai[start:stop]), b.floats(bi[start:stop])
        )
    return scaled(dots, a.scales.view[ai], b.scales.view[bi])


def block_cosines(a: Vectors, ai: IntArray, b: Vectors, bi: IntArray) -> FloatArray:
    """Cosines of every row ``ai`` with every row ``bi``: (len(ai), len(bi))."""
    out = np.empty((len(ai), len(bi)), dtype=np.float32)
    mine = a.floats(ai)
    sa = a.scales.view[ai][:, None]
    for start in range(0, len(bi), BLOCK):
        block = bi[start : start + BLOCK]
        dots = mine @ b.floats(block).T
        out[:, start : start + len(block)] = scaled(dots, sa, b.scales.view[block][None, :])
    return out
