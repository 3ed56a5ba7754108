"""Candidate generation for the all-requests run when the candidate side is large.

Scoring every request against every offer is 10^10 pairs at 100,000 x 100,000: too many
for exact scores. Two stages instead:

1. a dense sketch of each listing (a randomized truncated SVD of its idf-weighted word and
   concept rows, joined with its embedding's principal coordinates when there is one),
   offers clustered by spherical k-means; each request probes its ``probes`` nearest
   clusters and keeps the offers of each that break no hard constraint, keeping the
   ``shortlist`` best by sketch similarity times the exact fit factor (matrix products in
   blocks);
2. the shortlist of each request is scored exactly (``scoring``), hard
   constraints included, and the top ``k`` kept.

``bench/match_speed.py`` reports how often the exact top 10 survives stage 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

from node.matching.bulk import rescore, rows_of
from node.matching.index import rowwise_dots
from node.matching.scoring import FIT_FLOOR, combine_fit, fit_components, violations
from node.matching.store import KindStore
from node.services.heap import HeapTrimmer, trim_heap

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
# Sketches are held as float16 (computed in float32 a block at a time, and converted back
# a block at a time for each product): they are only compared to pick a shortlist, and
# float32 sketches of 170,000 listings (128 coordinates) were 87 MB of a ranking's peak.
Sketch = npt.NDArray[np.float16]

SKETCH_DIMS = 64
SAMPLE_ROWS = 20_000
SKETCH_ROWS = 20_000  # listings projected onto the sketch basis at a time
# Listings assigned to their nearest centroid at a time (x 4 bytes x clusters: 50,000 made
# a 63 MB block at 100,000 candidates, the ranking's peak before the probes).
ASSIGN_ROWS = 10_000
KMEANS_ITERATIONS = 6
CONCEPT_WEIGHT = 0.7
RESCORE_CHUNK = 100_000
PREFILTER = 4
THREADS = 2
# (request, candidate) sketch similarities of one probe at a time (x4 bytes, per thread).
PROBE_PAIRS = 1_000_000
# Prefiltered pairs whose fit and constraints are worked out at once, per thread: each
# costs ~100 bytes of temporaries (slots, fit components, masks); PROBE_PAIRS' rows alone
# made up to 530,000 of them a thread at 200,000 listings.
FIT_PAIRS = 100_000
NEAR_ROWS = 5_000  # requests compared with every centroid at a time
# Seconds between two trims of the heap while a ranking runs (``shortlist_top``).
RANKING_TRIM_S = 0.5


def _pad(m: sp.csr_matrix, width: int) -> sp.csr_matrix:
    if m.shape[1] == width:
        return m
    return sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width))


def _sparse_side(store: KindStore, slots: Ints, widths: tuple[int, int]) -> sp.csr_matrix:
    """The weighed text and concept rows of ``slots`` side by side (rows weighed alone:
    no matrix of every listing is built)."""
    text = _pad(store.sparse["text"].weighed(slots), widths[0])
    concepts = _pad(store.sparse["concepts"].weighed(slots), widths[1])
    return sp.hstack([text, CONCEPT_WEIGHT * concepts], format="csr")


def _basis(sample: sp.csr_matrix, dims: int, rng: np.random.Generator) -> Floats:
    """Top right singular vectors (dims x n_terms) by a randomized range finder."""
    rank = min(dims + 8, sample.shape[0], sample.shape[1])
    omega = rng.standard_normal((sample.shape[1], rank)).astype(np.float32)
    y = sample @ omega
    y = sample @ (sample.T @ y)  # one power iteration
    q, _ = np.linalg.qr(y)
    b = np.asarray((sample.T @ q).T, dtype=np.float32)
    _, _, vt = np.linalg.svd(b, full_matrices=False)
    return vt[: min(dims, len(vt))].astype(np.float32)


def _normalise(x: Floats) -> Floats:
    """``x`` with unit rows, in place (float32): a copy per step made the sketches'
    transient memory three times their size."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    x /= norms.astype(np.float32)
    return x


def sketches(
    rs: KindStore, req_slots: Ints, cs: KindStore, cand: Ints, dims: int, seed: int
) -> tuple[Sketch, Sketch]:
    """Dense, normalised sketches of the requests and the candidates: each listing's
    weighed words and concepts projected on ``_basis``, beside its embedding's coordinates
    in ``_dense_basis`` (zero without one), ``SKETCH_ROWS`` listings at a time."""
    rng = np.random.default_rng(seed)
    widths = (
        max(len(rs.sparse["text"].vocab.idf()), len(cs.sparse["text"].vocab.idf())),
        max(len(rs.sparse["concepts"].vocab.idf()), len(cs.sparse["concepts"].vocab.idf())),
    )
    pick = np.sort(rng.choice(len(cand), size=min(SAMPLE_ROWS, len(cand)), replace=False))
    basis = _basis(_sparse_side(cs, cand[pick], widths), dims, rng)
    dense = None
    if rs.dense is not None and cs.dense is not None:
        dense = _dense_basis(cs, cand[pick], dims)
    width = len(basis) + (len(dense) if dense is not None else 0)
    out = []
    for store, slots in ((rs, req_slots), (cs, cand)):
        x = np.empty((len(slots), width), np.float16)
        for start in range(0, len(slots), SKETCH_ROWS):
            block = slots[start : start + SKETCH_ROWS]
            part = np.empty((len(block), width), np.float32)  # both parts written below
            part[:, : len(basis)] = np.asarray(_sparse_side(store, block, widths) @ basis.T)
            if dense is not None:
                part[:, len(basis) :] = _project_dense(store, block, dense)
            x[start : start + len(block)] = _normalise(part)
        out.append(x)
    return out[0], out[1]


def _dense_basis(store: KindStore, sample: Ints, dims: int) -> Floats:
    """An orthonormal basis of ``dims`` directions in which the embeddings' dot products
    are nearly what they are in full: their mean direction (a sentence model's vectors
    share one large common direction: e5's cosines sit near 0.8), then the principal
    directions of what is left, from ``sample``'s vectors. A sketch holds the embedding's
    coordinates there, not all of it (384 float32 a listing made the sketches of 170,000
    listings 305 MB), with the same weight beside the words as before."""
    assert store.dense is not None
    vectors = store.dense.unit(sample[store.has_dense.view[sample]])
    if not len(vectors):
        return np.zeros((0, store.dense.width), np.float32)
    mean = vectors.mean(axis=0)
    vectors -= mean
    _, directions = np.linalg.eigh(vectors.T @ vectors)  # ascending eigenvalues
    top = directions[:, ::-1][:, : max(0, min(dims, len(vectors)) - 1)]
    basis, _ = np.linalg.qr(np.column_stack([mean, top]))  # the mean's direction first
    return np.ascontiguousarray(basis.T, dtype=np.float32)


def _project_dense(store: KindStore, slots: Ints, basis: Floats) -> Floats:
    """The embeddings of ``slots`` in ``_dense_basis`` coordinates (zero without one)."""
    assert store.dense is not None
    out: Floats = store.dense.unit(slots) @ basis.T
    return out


def kmeans(x: Sketch, n_clusters: int, seed: int) -> tuple[Floats, Ints]:
    """Spherical k-means: centroids fitted on a sample, then every row assigned."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x), size=min(len(x), 30 * n_clusters, 60_000), replace=False)
    sample = x[pick].astype(np.float32)
    centroids = sample[rng.choice(len(sample), size=n_clusters, replace=False)].copy()
    for _ in range(KMEANS_ITERATIONS):
        assign = np.argmax(sample @ centroids.T, axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, sample)
        empty = np.bincount(assign, minlength=n_clusters) == 0
        sums[empty] = centroids[empty]
        centroids = _normalise(sums)
    labels = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), ASSIGN_ROWS):
        block = x[start : start + ASSIGN_ROWS].astype(np.float32) @ centroids.T
        labels[start : start + ASSIGN_ROWS] = np.argmax(block, axis=1)
    return centroids, labels


_Context = tuple[KindStore, Ints, Sketch, KindStore, Ints, Sketch, int, int]


def _probe(job: tuple[Ints, Ints], context: _Context) -> tuple[Ints, Ints, Floats]:
    """One cluster against the requests that probe it: the best candidates of each row by
    sketch similarity, then by sketch x fit among those that break no hard constraint.
    Rows are taken ``PROBE_PAIRS`` (rows x members) and ``FIT_PAIRS`` (rows x prefiltered)
    at a time: a big cluster probed by many requests (listings alike) made a matrix of
    gigabytes at once."""
    rows, mem = job
    keep = context[6]
    if not len(rows) or not len(mem):
        return rows[:0], mem[:0].reshape(0, 0), np.zeros((0, 0), dtype=np.float32)
    step = max(1, min(PROBE_PAIRS // len(mem), FIT_PAIRS // min(PREFILTER * keep, len(mem))))
    if len(rows) <= step:
        return _probe_rows(rows, mem, context)
    parts = [_probe_rows(rows[i : i + step], mem, context) for i in range(0, len(rows), step)]
    return (
        np.concatenate([p[0] for p in parts]),
        np.vstack([p[1] for p in parts]),
        np.vstack([p[2] for p in parts]),
    )


def _probe_rows(rows: Ints, mem: Ints, context: _Context) -> tuple[Ints, Ints, Floats]:
    rs, req_slots, req_x, cs, cand, cand_x, keep, now_ms = context
    sims = req_x[rows].astype(np.float32) @ cand_x[mem].astype(np.float32).T
    wide = min(PREFILTER * keep, len(mem))
    if wide < len(mem):
        # A copy: a slice would keep the whole (rows x members) index array alive.
        pre = np.argpartition(-sims, wide - 1, axis=1)[:, :wide].copy()
    else:
        pre = np.broadcast_to(np.arange(len(mem)), sims.shape)
    sims = np.take_along_axis(sims, pre, axis=1)
    picked = mem[pre]
    ri = np.repeat(req_slots[rows], wide)
    ci = cand[picked].ravel()
    fit = combine_fit(fit_components(rs, ri, cs, ci)).reshape(sims.shape)
    sims = sims * (FIT_FLOOR + (1.0 - FIT_FLOOR) * fit)
    for mask in violations(rs, ri, cs, ci, now_ms).values():
        sims[mask.reshape(sims.shape)] = -np.inf
    take = min(keep, wide)
    best = np.argpartition(-sims, take - 1, axis=1)[:, :take]
    return rows, np.take_along_axis(picked, best, axis=1), np.take_along_axis(sims, best, axis=1)


def shortlist_top(
    rs: KindStore,
    req_slots: Ints,
    cs: KindStore,
    k: int,
    now_ms: int,
    *,
    dims: int = SKETCH_DIMS,
    probes: int = 4,
    shortlist: int = 40,
    seed: int = 0,
) -> tuple[Ints, Floats]:
    """Top ``k`` candidate slots and exact scores per request, via a sketch shortlist.
    The whole-store matrices it builds are dropped when it is done: held after, they were
    a second copy of every listing's terms (~80 MB at 68,000 listings) in the worker. The
    heap its temporaries freed is given back then (``trim_heap``): kept, it was ~40 MB
    under the next kind's ranking at 200,000 listings. It is given back every
    ``RANKING_TRIM_S`` meanwhile as well: the ranking's many small temporaries (below the
    mmap threshold) come from free chunks all over the heap that a build left, each page
    resident again once touched, so that a ranking of 70,000 requests against 85,000
    offers took the worker 417 MB above where it started, with 145 MB of it in use at
    most; trimmed every half second, 279 MB (each trim 15-25 ms, in a thread of its
    own, the ranking's threads going on)."""
    trimmer = HeapTrimmer(RANKING_TRIM_S)
    trimmer.start()
    try:
        return _shortlist_top(rs, req_slots, cs, k, now_ms, dims, probes, shortlist, seed)
    finally:
        trimmer.stop()
        for space in rs.spaces:
            rs.sparse[space].release()
            cs.sparse[space].release()
        trim_heap()


def _shortlist_sims(
    rs: KindStore, cs: KindStore, pairs: Callable[[int], tuple[Ints, Ints, Ints]], n: int
) -> dict[str, Floats]:
    """The sparse cosines of the ``n`` shortlist positions (``pairs(start)``: the
    shortlisted positions among ``RESCORE_CHUNK`` from ``start`` and their request and
    candidate slots, requests in order; the others stay 0), one space at a time: the
    candidates' weighed rows (``SparseRows.weighed_view``: the values beside the stored
    column ids) are made, used by both threads and dropped before the next space's; the
    requests' rows are weighed a chunk at a time (a chunk's pairs name a few thousand
    requests, each in one chunk only), the same numbers without a view of every request."""
    sims = {space: np.zeros(n, dtype=np.float32) for space in rs.spaces}
    for space in rs.spaces:
        b = cs.sparse[space].weighed_view()
        rs.sparse[space].vocab.idf()  # any refresh here, not in the threads below

        def chunk(start: int, b: sp.csr_matrix = b, s: str = space) -> None:
            pos, ri, ci = pairs(start)
            a, ai = rows_of(rs.sparse[s], ri)
            sims[s][pos] = rowwise_dots(a, ai, b, ci)

        with ThreadPoolExecutor(max_workers=THREADS) as pool:  # sparsetools drop the GIL
            list(pool.map(chunk, range(0, n, RESCORE_CHUNK)))
        del b
        cs.sparse[space].release()
    return sims


def _shortlist_top(
    rs: KindStore,
    req_slots: Ints,
    cs: KindStore,
    k: int,
    now_ms: int,
    dims: int,
    probes: int,
    shortlist: int,
    seed: int,
) -> tuple[Ints, Floats]:
    cand = cs.live_slots()
    n_r = len(req_slots)
    if not len(cand) or not n_r:
        return np.full((n_r, k), -1, dtype=np.int64), np.full((n_r, k), -np.inf, np.float32)
    req_x, cand_x = sketches(rs, req_slots, cs, cand, dims, seed)
    n_clusters = int(min(1024, max(1, np.sqrt(len(cand)))))
    centroids, labels = kmeans(cand_x, n_clusters, seed)
    probes = min(probes, n_clusters)
    near = np.empty((n_r, probes), dtype=np.int64)
    for start in range(0, n_r, NEAR_ROWS):
        sims = req_x[start : start + NEAR_ROWS].astype(np.float32) @ centroids.T
        near[start : start + NEAR_ROWS] = np.argpartition(-sims, probes - 1, axis=1)[:, :probes]
    members = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[members], np.arange(n_clusters + 1))
    keep = shortlist
    found = np.full((n_r, keep), -1, dtype=np.int32)  # positions in ``cand``
    approx = np.full((n_r, keep), -np.inf, dtype=np.float32)
    flat_rows = np.repeat(np.arange(n_r), probes)
    flat_cluster = near.ravel()
    order = np.argsort(flat_cluster, kind="stable")
    group = np.searchsorted(flat_cluster[order], np.arange(n_clusters + 1))
    jobs = [
        (flat_rows[order[group[c] : group[c + 1]]], members[bounds[c] : bounds[c + 1]])
        for c in range(n_clusters)
    ]
    context = (rs, req_slots, req_x, cs, cand, cand_x, keep, now_ms)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:  # BLAS and ufuncs drop the GIL
        for rows, picked, picked_s in pool.map(functools.partial(_probe, context=context), jobs):
            if not len(rows):
                continue
            both_c = np.hstack([found[rows], picked])
            both_s = np.hstack([approx[rows], picked_s])
            part = np.argpartition(-both_s, keep - 1, axis=1)[:, :keep]
            found[rows] = np.take_along_axis(both_c, part, axis=1)
            approx[rows] = np.take_along_axis(both_s, part, axis=1)
    del req_x, cand_x, context, jobs  # the sketches: not needed past the probes
    short = np.where(np.isfinite(approx), found, -1).ravel()  # int32, as ``found``
    del found, approx
    exact = np.full(short.size, -np.inf, dtype=np.float32)

    def pairs(start: int) -> tuple[Ints, Ints, Ints]:
        """The shortlisted positions among ``RESCORE_CHUNK`` from ``start``, and their
        request and candidate slots (positions are found per chunk: an array of all of
        them was 8 bytes a pair, 32 MB at 100,000 requests)."""
        flat = short[start : start + RESCORE_CHUNK]
        pos = np.flatnonzero(flat >= 0)
        return pos + start, req_slots[(pos + start) // keep], cand[flat[pos]]

    cosines = _shortlist_sims(rs, cs, pairs, short.size)

    def chunk(start: int) -> None:
        pos, ri, ci = pairs(start)
        part = {space: values[pos] for space, values in cosines.items()}
        exact[pos], _ = rescore(rs, ri, cs, ci, now_ms, part)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:  # ufuncs drop the GIL
        list(pool.map(chunk, range(0, short.size, RESCORE_CHUNK)))
    cosines.clear()
    table = exact.reshape(n_r, keep)
    take = min(k, keep)
    best = np.argsort(-table, axis=1, kind="stable")[:, :take]
    scores = np.take_along_axis(table, best, axis=1)
    slots = np.where(
        np.isfinite(scores),
        cand[np.maximum(np.take_along_axis(short.reshape(n_r, keep), best, 1), 0)],
        -1,
    )
    if take == k:
        return slots, scores
    # Made only now (the answer, as wide as asked): held through the probes and the
    # rescoring, they were ~18 MB more at their peak at 76,000 requests.
    out_slots = np.full((n_r, k), -1, dtype=np.int64)
    out_scores = np.full((n_r, k), -np.inf, dtype=np.float32)
    out_slots[:, :take], out_scores[:, :take] = slots, scores
    return out_slots, out_scores
