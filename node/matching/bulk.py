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

from node.matching.index import Postings, SparseRows, rowwise_dots
from node.matching.scoring import Scored, grid_scores, score_bounds, score_pairs, violations
from node.matching.store import KindStore
from node.matching.vectors import block_cosines, pair_cosines

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
# Pairs scored at once by ``exact_top``: each pair costs ~220 bytes of temporaries (sims,
# pair indices, score components), so 2,000,000 made a 450 MB peak in the hub's matching
# worker at 3,500 listings; 100,000 keeps it near 20 MB and is no slower (less cache miss).
BLOCK_PAIRS = 100_000


def one_vs_all(
    own: KindStore,
    own_slot: int,
    other: KindStore,
    now_ms: int,
    *,
    k: int | None = None,
    floor: Floats | None = None,
) -> tuple[Ints, Scored]:
    """Exact scores of the listing at ``own_slot`` of ``own`` (with its embedding, if it
    has one) against the live slots of ``other`` that can matter; returns those slots and
    their scores.

    With ``k``: the slots that can be in its top ``k``. With ``floor`` (one value per slot of
    ``other``): the slots whose score can exceed it. Neither: every live slot. Pruning uses
    an upper bound (the sparse similarities plus full marks for codes and fit), so the
    answer is the same as scoring everything.
    """
    slots = other.live_slots()
    sims: dict[str, Floats] = {}
    for space in own.spaces:
        query = queries(own.sparse[space], np.array([own_slot], dtype=np.int64))
        cols, vals = query.indices, query.data
        full = np.zeros(len(other.features), dtype=np.float32)
        for first, piece in other.sparse[space].pieces():
            usable = cols < piece.shape[1]
            if usable.any():
                block = _columns(piece, cols[usable]) @ vals[usable]
                full[first : first + piece.shape[0]] = np.asarray(block, dtype=np.float32).ravel()
        sims[space] = full[slots]
    semantic = None
    if own.dense is not None and other.dense is not None and own.has_dense.view[own_slot]:
        semantic = other.dense.against(own.dense.row(own_slot), slots)
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


def _grid_best(
    own: KindStore,
    own_slots: Ints,
    other: KindStore,
    slots: Ints,
    sims: dict[str, Floats],
    semantic: Floats | None,
    now_ms: int,
    k: int,
    lo: int,
    hi: int,
) -> tuple[Ints, Ints]:
    """(row, column) of each listing's best ``k + RESCORE_MARGIN`` candidates among the
    columns ``lo:hi`` of a block, by ``grid_scores``; excluded pairs left out."""
    part_slots = slots[lo:hi]
    part_sims = {space: values[:, lo:hi] for space, values in sims.items()}
    part_sem = semantic[:, lo:hi] if semantic is not None else None
    if own.kind == "request":
        grid = grid_scores(own, own_slots, other, part_slots, part_sims, part_sem, now_ms)
    else:
        flipped = {space: values.T for space, values in part_sims.items()}
        sem_t = part_sem.T if part_sem is not None else None
        grid = grid_scores(other, part_slots, own, own_slots, flipped, sem_t, now_ms).T
    take = min(k + RESCORE_MARGIN, len(part_slots))
    best = np.argpartition(-grid, take - 1, axis=1)[:, :take]
    rows = np.repeat(np.arange(len(own_slots), dtype=np.int64), take)
    cols = best.ravel().astype(np.int64)
    good = np.isfinite(grid[rows, cols])
    return rows[good], cols[good] + lo


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
    """Sparse cosines (and the embedding cosine) of arbitrary pairs. From the whole-store
    matrices when a bulk ranking has built them, else from the rows the pairs name alone:
    a few thousand pairs do not build (and keep) a matrix of every listing."""
    sims = {}
    for space in rs.spaces:
        a, a_i = rows_of(rs.sparse[space], ri)
        b, b_i = rows_of(cs.sparse[space], ci)
        sims[space] = rowwise_dots(a, a_i, b, b_i)
    return sims, dense_sims(rs, ri, cs, ci)


def dense_sims(rs: KindStore, ri: Ints, cs: KindStore, ci: Ints) -> Floats | None:
    """The embedding cosine of arbitrary pairs; None without embeddings on both sides."""
    if rs.dense is None or cs.dense is None:
        return None
    return pair_cosines(rs.dense, ri, cs.dense, ci)


def rows_of(rows: SparseRows, slots: Ints) -> tuple[sp.csr_matrix, Ints]:
    """A weighed matrix holding the rows ``slots`` and each slot's row in it."""
    built = rows.built()
    if built is not None:
        return built, slots
    wanted, where = np.unique(slots, return_inverse=True)
    return rows.weighed(wanted), where.reshape(-1).astype(np.int64)


def exact_top(
    rs: KindStore, req_slots: Ints, cs: KindStore, k: int, now_ms: int
) -> tuple[Ints, Floats]:
    """Top ``k`` candidate slots (-1 where fewer) and scores (-inf) for each request slot,
    scoring every pair exactly, in blocks of requests; the whole-store matrices it
    builds are dropped when it is done, as ``ivf.shortlist_top``'s are."""
    try:
        return _exact_top(rs, req_slots, cs, k, now_ms)
    finally:
        for space in rs.spaces:
            rs.sparse[space].release()
            cs.sparse[space].release()


def _exact_top(
    rs: KindStore, req_slots: Ints, cs: KindStore, k: int, now_ms: int
) -> tuple[Ints, Floats]:
    cand = cs.live_slots()
    out_slots = np.full((len(req_slots), k), -1, dtype=np.int64)
    out_scores = np.full((len(req_slots), k), -np.inf, dtype=np.float32)
    if not len(cand) or not len(req_slots):
        return out_slots, out_scores
    mats = {s: (rs.sparse[s].matrix(), cs.sparse[s].matrix()[cand]) for s in rs.spaces}
    block = max(1, BLOCK_PAIRS // len(cand))
    for start in range(0, len(req_slots), block):
        rows = req_slots[start : start + block]
        sims = {}
        for space, (req_m, cand_m) in mats.items():
            left, right = _same_width(req_m, cand_m)
            prod = left[rows] @ right.T
            sims[space] = np.asarray(prod.toarray(), dtype=np.float32).ravel()
        semantic = None
        if cs.dense is not None and rs.dense is not None:
            semantic = block_cosines(rs.dense, rows, cs.dense, cand).ravel()
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


def rescore(
    rs: KindStore,
    ri: Ints,
    cs: KindStore,
    ci: Ints,
    now_ms: int,
    sims: dict[str, Floats] | None = None,
) -> tuple[Floats, Scored]:
    """Exact scores of a shortlist of pairs; excluded pairs get -inf. ``sims``: the pairs'
    sparse cosines when the caller has them (``pair_sims``' first part)."""
    if sims is None:
        sims, semantic = pair_sims(rs, ri, cs, ci)
    else:
        semantic = dense_sims(rs, ri, cs, ci)
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


# Pairs of one ``many_vs_all`` call (listings x the other side): its similarities, ~30
# bytes a pair, are held for the whole call. The more listings a call takes, the fewer
# times the other side's columns are read and cut (at 200,000 listings, 2 a call made a
# pass 1.5 times as long as 11 a call).
MANY_PAIRS = 1_000_000
# Pairs of one ``grid_scores`` call: the grid's tables cost ~100 bytes a pair, so a call's
# candidates are scored in slices of GRID_PAIRS / listings (1,000,000 pairs at once had
# made the matching worker's pass peak 150 MB above its steady size).
GRID_PAIRS = 250_000
RESCORE_MARGIN = 5


def queries(rows: SparseRows, slots: Ints) -> sp.csr_matrix:
    """The idf-weighted, L2-normalised rows of ``slots`` (as ``Vocabulary.query`` weighs
    one listing's terms), on the current idf snapshot."""
    idf = rows.vocab.idf()
    tf = rows.csr(0, len(idf), slots)
    weighted = tf.multiply(idf.astype(np.float64)).tocsr()
    sq = np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel()
    norms = np.sqrt(sq)
    norms[norms == 0] = 1.0
    out = sp.diags(1.0 / norms) @ weighted
    return out.astype(np.float32).tocsr()


def _columns(piece: Postings | sp.csr_matrix, cols: Ints) -> sp.spmatrix:
    """The columns ``cols`` of a piece of ``SparseRows.pieces()``, weighed."""
    if isinstance(piece, Postings):
        return piece.columns(cols)
    return piece[:, cols]


def _fit(q: sp.csr_matrix, width: int) -> sp.csr_matrix:
    """``q`` with ``width`` columns (terms past a piece's width are dropped)."""
    if q.shape[1] > width:
        return q[:, :width].tocsr()
    if q.shape[1] < width:
        return sp.csr_matrix((q.data, q.indices, q.indptr), shape=(q.shape[0], width))
    return q


def many_vs_all(
    own: KindStore, own_slots: Ints, other: KindStore, now_ms: int, k: int
) -> tuple[list[tuple[Ints, Floats, Ints]], Scored | None]:
    """``one_vs_all(..., k=k)`` for several listings of ``own`` at once (one sparse
    product per space for all of them, bounds and constraints as arrays of pairs).

    Returns, per listing of ``own_slots``, its best ``k`` (other slots, scores, indices
    into the returned ``Scored``), best first, and the ``Scored`` of the pairs kept."""
    slots = other.live_slots()
    b, n = len(own_slots), len(slots)
    empty = (np.empty(0, np.int64), np.empty(0, np.float32), np.empty(0, np.int64))
    if not b or not n:
        return [empty] * b, None
    sims: dict[str, Floats] = {}
    for space in own.spaces:
        q = queries(own.sparse[space], own_slots)
        full = np.zeros((b, len(other.features)), dtype=np.float32)
        for first, piece in other.sparse[space].pieces():
            fitted = _fit(q, piece.shape[1])
            cols = np.unique(fitted.indices)  # the terms these listings have, in order
            block = _columns(piece, cols) @ fitted[:, cols].T
            full[:, first : first + piece.shape[0]] = np.asarray(
                block.toarray(), dtype=np.float32
            ).T
        sims[space] = full[:, slots]
    semantic = None
    if own.dense is not None and other.dense is not None:
        semantic = block_cosines(own.dense, own_slots, other.dense, slots)
    # Every pair of the block scored (without components) a slice of candidates at a
    # time; each listing's best few of each slice are scored again with their components
    # (the grid and score_pairs may differ in the last bit: a margin keeps near-ties in).
    width = max(1, GRID_PAIRS // b)
    picked = [
        _grid_best(own, own_slots, other, slots, sims, semantic, now_ms, k, lo, lo + width)
        for lo in range(0, n, width)
    ]
    rows = np.concatenate([r for r, _ in picked])
    cols = np.concatenate([c for _, c in picked])
    sub = {space: values[rows, cols] for space, values in sims.items()}
    sem = semantic[rows, cols] if semantic is not None else None
    mine, theirs = own_slots[rows].astype(np.int64), slots[cols]
    req, ri, cand, ci = (
        (own, mine, other, theirs) if own.kind == "request" else (other, theirs, own, mine)
    )
    scored = score_pairs(req, ri, cand, ci, sub, now_ms, sem)
    score = np.where(scored.allowed, scored.score, -np.inf).astype(np.float32)
    order = np.lexsort((theirs, -score, rows))  # by listing, best first (ties: slot order)
    sorted_rows, finite = rows[order], np.isfinite(score[order])
    out: list[tuple[Ints, Floats, Ints]] = []
    bounds = np.searchsorted(sorted_rows, np.arange(b + 1))
    for i in range(b):
        idx = order[bounds[i] : bounds[i + 1]][finite[bounds[i] : bounds[i + 1]]][:k]
        out.append((theirs[idx], score[idx], idx))
    return out, scored
