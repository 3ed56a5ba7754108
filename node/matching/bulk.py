"""Similarity computation for many pairs: one listing against all, blocks, and shortlists.

Three routes give the same exact scores (``scoring.score_pairs``) and differ only in how
many pairs reach it:

- ``one_vs_all``: a new or changed listing against every live listing of the other side,
  through the column postings of its own terms (CSC), then exact scores only for the
  candidates whose upper bound can still reach its top k (``scoring.score_bounds``);
- ``exact_top``: every request against every candidate, in blocks of sparse products;
  used while there are few enough pairs (``matcher.EXACT_PAIRS``);
- ``shortlist_top`` (module ``ivf``): beyond that, a cheap dense candidate generation
  proposes a shortlist per request and only the shortlist is scored exactly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

from node.matching.features import Features
from node.matching.index import rowwise_dots
from node.matching.scoring import Scored, score_bounds, score_pairs, violations
from node.matching.store import SPACES, KindStore

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
BLOCK_PAIRS = 2_000_000


def _weights(feats: Features, space: str) -> dict[str, float]:
    return feats.words if space == "text" else getattr(feats, space)


def one_vs_all(
    feats: Features,
    vector: Floats | None,
    own: KindStore,
    own_slot: int,
    other: KindStore,
    now_ms: int,
    *,
    k: int | None = None,
    floor: Floats | None = None,
) -> tuple[Ints, Scored]:
    """Exact scores of ``feats`` (held at ``own_slot`` of ``own``) against the live slots of
    ``other`` that can matter; returns those slots and their scores.

    With ``k``: the slots that can be in its top ``k``. With ``floor`` (one value per slot of
    ``other``): the slots whose score can exceed it. Neither: every live slot. Pruning uses
    an upper bound (the sparse similarities plus full marks for codes and fit), so the
    answer is the same as scoring everything.
    """
    slots = other.live_slots()
    sims: dict[str, Floats] = {}
    for space in SPACES:
        cols, vals = other.vocabs[space].query(_weights(feats, space))
        full = np.zeros(len(other.features), dtype=np.float32)
        for first, piece in other.sparse[space].pieces():
            usable = cols < piece.shape[1]
            if usable.any():
                block = piece[:, cols[usable]] @ vals[usable]
                full[first : first + piece.shape[0]] = np.asarray(block, dtype=np.float32).ravel()
        sims[space] = full[slots]
    semantic = None
    if vector is not None and other.dense is not None:
        semantic = (other.dense.view[slots] @ vector).astype(np.float32)
    mine = np.full(len(slots), own_slot, dtype=np.int64)
    req, ri, cand, ci = (
        (own, mine, other, slots)
        if own.kind == "request"
        else (
            other,
            slots,
            own,
            mine,
        )
    )
    if k is None and floor is None:
        return slots, score_pairs(req, ri, cand, ci, sims, now_ms, semantic)
    dense = req.has_dense.view[ri] & cand.has_dense.view[ci] if semantic is not None else None
    lower, upper = score_bounds(sims, semantic, dense, req.has_concepts.view[ri], req.sem_scale)
    for mask in violations(req, ri, cand, ci, now_ms).values():
        upper[mask] = -np.inf
    if floor is not None:
        keep = np.flatnonzero(upper > floor[slots])
    else:
        keep = _bounded_top(lower, upper, int(k or 0))
    sub = {space: values[keep] for space, values in sims.items()}
    sem = semantic[keep] if semantic is not None else None
    return slots[keep], score_pairs(req, ri[keep], cand, ci[keep], sub, now_ms, sem)


def _bounded_top(lower: Floats, upper: Floats, k: int) -> Ints:
    """A superset of the top ``k``: at least k candidates score at least the k-th best
    lower bound, so a candidate whose upper bound is below it cannot be among them."""
    finite = np.flatnonzero(np.isfinite(upper))
    if len(finite) <= k:
        return finite.astype(np.int64)
    kth = np.partition(lower[finite], len(finite) - k)[len(finite) - k]
    out: Ints = finite[upper[finite] >= kth].astype(np.int64)
    return out


def pair_sims(
    rs: KindStore, ri: Ints, cs: KindStore, ci: Ints
) -> tuple[dict[str, Floats], Floats | None]:
    """Sparse cosines (and the embedding cosine) of arbitrary pairs."""
    sims = {
        space: rowwise_dots(rs.sparse[space].matrix(), ri, cs.sparse[space].matrix(), ci)
        for space in SPACES
    }
    semantic = None
    if rs.dense is not None and cs.dense is not None:
        semantic = np.einsum("ij,ij->i", rs.dense.view[ri], cs.dense.view[ci]).astype(np.float32)
    return sims, semantic


def exact_top(
    rs: KindStore, req_slots: Ints, cs: KindStore, k: int, now_ms: int
) -> tuple[Ints, Floats]:
    """Top ``k`` candidate slots (-1 where fewer) and scores (-inf) for each request slot,
    scoring every pair exactly, in blocks of requests."""
    cand = cs.live_slots()
    out_slots = np.full((len(req_slots), k), -1, dtype=np.int64)
    out_scores = np.full((len(req_slots), k), -np.inf, dtype=np.float32)
    if not len(cand) or not len(req_slots):
        return out_slots, out_scores
    mats = {s: (rs.sparse[s].matrix(), cs.sparse[s].matrix()[cand]) for s in SPACES}
    dense_c = cs.dense.view[cand] if cs.dense is not None else None
    block = max(1, BLOCK_PAIRS // len(cand))
    for start in range(0, len(req_slots), block):
        rows = req_slots[start : start + block]
        sims = {}
        for space, (req_m, cand_m) in mats.items():
            left, right = _same_width(req_m, cand_m)
            prod = left[rows] @ right.T
            sims[space] = np.asarray(prod.toarray(), dtype=np.float32).ravel()
        semantic = None
        if dense_c is not None and rs.dense is not None:
            semantic = (rs.dense.view[rows] @ dense_c.T).astype(np.float32).ravel()
        ri = np.repeat(rows, len(cand))
        ci = np.tile(cand, len(rows))
        scored = score_pairs(rs, ri, cs, ci, sims, now_ms, semantic)
        score = np.where(scored.allowed, scored.score, -np.inf).reshape(len(rows), len(cand))
        take = min(k, len(cand))
        part = np.argpartition(-score, take - 1, axis=1)[:, :take]
        top = np.take_along_axis(score, part, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        part = np.take_along_axis(part, order, axis=1)
        top = np.take_along_axis(top, order, axis=1)
        out_scores[start : start + len(rows), :take] = top
        out_slots[start : start + len(rows), :take] = np.where(np.isfinite(top), cand[part], -1)
    return out_slots, out_scores


def rescore(rs: KindStore, ri: Ints, cs: KindStore, ci: Ints, now_ms: int) -> tuple[Floats, Scored]:
    """Exact scores of a shortlist of pairs; excluded pairs get -inf."""
    sims, semantic = pair_sims(rs, ri, cs, ci)
    scored = score_pairs(rs, ri, cs, ci, sims, now_ms, semantic)
    return np.where(scored.allowed, scored.score, -np.inf).astype(np.float32), scored


def _same_width(a: sp.csr_matrix, b: sp.csr_matrix) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    width = max(a.shape[1], b.shape[1])
    if a.shape[1] != width:
        a = sp.csr_matrix((a.data, a.indices, a.indptr), shape=(a.shape[0], width))
    if b.shape[1] != width:
        b = sp.csr_matrix((b.data, b.indices, b.indptr), shape=(b.shape[0], width))
    return a, b


def top_indices(score: Floats, k: int) -> Ints:
    """Indices of the ``k`` highest finite scores, best first."""
    finite = np.flatnonzero(np.isfinite(score))
    if not len(finite):
        return finite.astype(np.int64)
    take = min(k, len(finite))
    part = finite[np.argpartition(-score[finite], take - 1)[:take]]
    return part[np.argsort(-score[part], kind="stable")].astype(np.int64)
