"""The score of a request-candidate pair: named components, hard constraints, one number.

score = relevance x (FIT_FLOOR + (1 - FIT_FLOOR) x fit), in [0, 1]:

- relevance: weighted mean of the relevance components present for the pair (text,
  concepts, ngrams, semantic, ipc, isic, sector, and the inferred_* components). A
  component is absent when a side lacks the data (a field the owner's policy withheld, a
  request without IPC codes, no model): its weight goes to the others instead of counting
  as a mismatch. A request without sector, IPC or ISIC codes gets them inferred from its
  text (``infer``): ``inferred_sector``, ``inferred_ipc`` and ``inferred_isic`` are the
  probability those inferences put on the candidate's own codes.
- fit: mean of the fit components present (trl, partnership, target); FIT_NEUTRAL when
  none is (experts have neither TRL nor partnership types).

Hard constraints exclude a pair whatever its score: the offer's TRL below the request's
trl_min, no partnership type in common (when both sides name some), either side expired
(expires <= now), a side removed. Everything is computed for arrays of pairs at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from node.matching.code_overlap import ipc_similarity, isic_similarity
from node.matching.codes import MAX_IPC, MAX_ISIC
from node.matching.infer import candidate_codes, code_sets, inferred_value, value_table
from node.matching.reftable import KeyIds
from node.matching.store import INFER_KINDS, REKEY_MIN, REKEY_SHARE, KindStore

RELEVANCE_WEIGHTS: dict[str, float] = {
    "text": 0.30,
    "concepts": 0.30,
    "ngrams": 0.15,
    "semantic": 0.30,
    "ipc": 0.15,
    "isic": 0.05,
    "sector": 0.05,
    # Codes inferred from the text of a request without any (``infer``): chosen on the
    # dev split; inferred IPC classes and ISIC divisions lowered it (0.925 -> 0.912 and
    # 0.920 nDCG@10 at 0.05), so they are off.
    "inferred_sector": 0.10,
    "inferred_ipc": 0.0,
    "inferred_isic": 0.0,
}


def inferred_kinds() -> tuple[str, ...]:
    """The kinds of inferred codes the score weighs."""
    return tuple(k for k in INFER_KINDS if RELEVANCE_WEIGHTS[f"inferred_{k}"] > 0)


FIT_COMPONENTS = ("trl", "partnership", "target")
FIT_FLOOR = 0.8
FIT_NEUTRAL = 0.5

Floats = npt.NDArray[np.float32]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Scored:
    """Scores of many pairs; ``allowed`` is False where a hard constraint excludes the pair."""

    score: Floats
    allowed: Bools
    components: dict[str, tuple[Floats, Bools]]


def violations(rs: KindStore, ri: Ints, cs: KindStore, ci: Ints, now_ms: int) -> dict[str, Bools]:
    """Each hard constraint, per pair: True where it is violated."""
    trl = cs.trl.view[ci].astype(np.int16)
    trl_min = rs.trl_min.view[ri].astype(np.int16)
    p_req = rs.pmask.view[ri]
    p_cand = cs.pmask.view[ci]
    return {
        "trl_below_min": (trl >= 0) & (trl_min >= 0) & (trl < trl_min),
        "no_common_partnership": (p_req != 0) & (p_cand != 0) & ((p_req & p_cand) == 0),
        "expired": (rs.expires.view[ri] <= now_ms) | (cs.expires.view[ci] <= now_ms),
        "removed": ~(rs.alive.view[ri] & cs.alive.view[ci]),
    }


def _lexical_weight(sims: dict[str, Floats]) -> float:
    """The weight of the components present for every pair: text, and on a lexical
    matcher (``store.SEMANTIC_SPACES``) the n-grams."""
    w = RELEVANCE_WEIGHTS
    return w["text"] + (w["ngrams"] if "ngrams" in sims else 0.0)


def _lexical(sims: dict[str, Floats]) -> Floats:
    """The weighted text (and n-gram) similarities."""
    w = RELEVANCE_WEIGHTS
    known: Floats = w["text"] * sims["text"]
    if "ngrams" in sims:
        known += w["ngrams"] * sims["ngrams"]
    return known


def score_pairs(
    rs: KindStore,
    ri: Ints,
    cs: KindStore,
    ci: Ints,
    sims: dict[str, Floats],
    now_ms: int,
    semantic: Floats | None = None,
) -> Scored:
    """Score the pairs (rs[ri[p]], cs[ci[p]]); ``sims`` holds the sparse cosines per space."""
    n = len(ri)
    everywhere = np.ones(n, dtype=np.bool_)
    comps: dict[str, tuple[Floats, Bools]] = {}
    comps["text"] = (sims["text"], everywhere)
    comps["concepts"] = (sims["concepts"], rs.has_concepts.view[ri])
    if "ngrams" in sims:  # a lexical matcher's (``store.SEMANTIC_SPACES``)
        comps["ngrams"] = (sims["ngrams"], everywhere)
    if semantic is not None:
        present = rs.has_dense.view[ri] & cs.has_dense.view[ci]
        comps["semantic"] = (semantic_value(semantic, rs.sem_scale), present)
    # One listing against many (the usual incremental case): keep its side as one row.
    r_rows = ri[:1] if n and (ri == ri[0]).all() else ri
    c_rows = ci[:1] if n and (ci == ci[0]).all() else ci
    r_ipc, c_ipc = rs.ipc.view[r_rows], cs.ipc.view[c_rows]
    ipc_present = np.broadcast_to((r_ipc[:, 0] > 0) & (c_ipc[:, 0] > 0), (n,))
    comps["ipc"] = (_full(ipc_similarity(r_ipc, c_ipc), n), ipc_present)
    r_isic, c_isic = rs.isic.view[r_rows], cs.isic.view[c_rows]
    isic_present = np.broadcast_to((r_isic[:, 0] > 0) & (c_isic[:, 0] > 0), (n,))
    comps["isic"] = (_full(isic_similarity(r_isic, c_isic), n), isic_present)
    r_sec, c_sec = rs.smask.view[ri], cs.smask.view[ci]
    comps["sector"] = (((r_sec & c_sec) != 0).astype(np.float32), (r_sec != 0) & (c_sec != 0))
    for kind in inferred_kinds():
        r_codes, r_probs = rs.inferred(kind, r_rows)
        r_has = r_probs[:, 0] > 0
        if not r_has.any():
            continue
        c_has = (candidate_codes(cs, kind, c_rows) > 0).any(axis=1)
        value = inferred_value(kind, r_codes, r_probs, cs, c_rows)
        comps[f"inferred_{kind}"] = (_full(value, n), np.broadcast_to(r_has & c_has, (n,)))

    comps.update(fit_components(rs, ri, cs, ci))

    weighted = np.zeros(n, dtype=np.float32)
    total = np.zeros(n, dtype=np.float32)
    for name, weight in RELEVANCE_WEIGHTS.items():
        if name in comps:
            value, present = comps[name]
            weighted += np.where(present, weight * value, 0.0).astype(np.float32)
            total += np.where(present, weight, 0.0).astype(np.float32)
    relevance = np.clip(weighted / np.maximum(total, 1e-9), 0.0, 1.0)
    fit = combine_fit(comps)
    comps["relevance"] = (relevance.astype(np.float32), everywhere)
    comps["fit"] = (fit, everywhere)
    score = (relevance * (FIT_FLOOR + (1.0 - FIT_FLOOR) * fit)).astype(np.float32)
    blocked = np.zeros(n, dtype=np.bool_)
    for mask in violations(rs, ri, cs, ci, now_ms).values():
        blocked |= mask
    return Scored(score=score, allowed=~blocked, components=comps)


def score_bounds(
    sims: dict[str, Floats],
    semantic: Floats | None,
    dense_present: Bools | None,
    concepts_present: Bools,
    sem_scale: tuple[float, float] = (0.10, 0.60),
) -> tuple[Floats, Floats]:
    """Lower and upper bounds of each pair's score from its text similarities alone, the
    taxonomy and fit components being unknown: they are all in [0, 1], may be absent, and
    a weighted mean only rises when a component valued 1 joins it."""
    w = RELEVANCE_WEIGHTS
    known = _lexical(sims)
    total = np.full(known.shape, _lexical_weight(sims), dtype=np.float32)
    known = known + np.where(concepts_present, w["concepts"] * sims["concepts"], 0.0)
    total = total + np.where(concepts_present, w["concepts"], 0.0)
    if semantic is not None and dense_present is not None:
        value = semantic_value(semantic, sem_scale)
        known = known + np.where(dense_present, w["semantic"] * value, 0.0)
        total = total + np.where(dense_present, w["semantic"], 0.0)
    codes = w["ipc"] + w["isic"] + w["sector"] + sum(w[f"inferred_{k}"] for k in inferred_kinds())
    lower: Floats = (FIT_FLOOR * known / (total + codes)).astype(np.float32)
    upper: Floats = ((known + codes) / (total + codes) + 1e-5).astype(np.float32)
    return lower, upper


def grid_scores(
    rs: KindStore,
    r_slots: Ints,
    cs: KindStore,
    c_slots: Ints,
    sims: dict[str, Floats],
    semantic: Floats | None,
    now_ms: int,
) -> Floats:
    """``score_pairs``'s scores of every request of ``r_slots`` with every candidate of
    ``c_slots`` (``sims`` and ``semantic``: one row per request), -inf where a hard
    constraint excludes the pair, without components.

    Everything but the text and embedding similarities depends on a few coded columns
    of each side (codes, sectors, TRL, partnership and country masks, expiry), and few
    listings differ in all of them: those parts are computed once per pair of distinct
    column sets, in a small table, and read from it for every pair."""
    w = RELEVANCE_WEIGHTS
    r_inv, r_rep = _distinct(rs, r_slots, now_ms)
    c_inv, c_rep = _distinct(cs, c_slots, now_ms)
    # Every pair of distinct sets, request rows by candidate columns: each side's columns
    # are read once and broadcast (a column of requests against a row of candidates),
    # not gathered again for every pair; codes are cut to their levels once per side.
    shape = (len(r_rep), len(c_rep))
    ri, ci = r_rep[:, None], c_rep[None, :]
    comps: dict[str, tuple[Floats, Bools]] = {}
    r_ipc, c_ipc = rs.ipc.view[r_rep], cs.ipc.view[c_rep]
    comps["ipc"] = (
        ipc_similarity(r_ipc, c_ipc, grid=True),
        np.logical_and.outer(r_ipc[:, 0] > 0, c_ipc[:, 0] > 0),
    )
    r_isic, c_isic = rs.isic.view[r_rep], cs.isic.view[c_rep]
    comps["isic"] = (
        isic_similarity(r_isic, c_isic, grid=True),
        np.logical_and.outer(r_isic[:, 0] > 0, c_isic[:, 0] > 0),
    )
    r_sec, c_sec = rs.smask.view[ri], cs.smask.view[ci]
    comps["sector"] = (((r_sec & c_sec) != 0).astype(np.float32), (r_sec != 0) & (c_sec != 0))
    inferring = [k for k in inferred_kinds() if rs.has_inferred(k)[r_slots].any()]
    for kind in inferring:
        c_has = (candidate_codes(cs, kind, c_rep) > 0).any(axis=1)
        # The value is per request (added below); presence is a column of each side.
        present = np.logical_and.outer(rs.has_inferred(kind)[r_rep], c_has)
        comps[f"inferred_{kind}"] = (np.zeros(shape, np.float32), present)
    coded = np.zeros(shape, dtype=np.float32)
    total = np.full(shape, _lexical_weight(sims), dtype=np.float32)
    total += np.where(rs.has_concepts.view[ri], w["concepts"], 0.0).astype(np.float32)
    if semantic is not None:
        dense = rs.has_dense.view[ri] & cs.has_dense.view[ci]
        total += np.where(dense, w["semantic"], 0.0).astype(np.float32)
    for name in ("ipc", "isic", "sector", *(f"inferred_{k}" for k in inferring)):
        value, present = comps[name]
        coded += np.where(present, w[name] * value, 0.0).astype(np.float32)
        total += np.where(present, w[name], 0.0).astype(np.float32)
    factor = FIT_FLOOR + (1.0 - FIT_FLOOR) * combine_fit(fit_components(rs, ri, cs, ci))
    blocked = np.zeros(shape, dtype=np.bool_)
    for mask in violations(rs, ri, cs, ci, now_ms).values():
        blocked |= mask
    inv_total = (1.0 / np.maximum(total, 1e-9)).astype(np.float32)
    coded_share = coded * inv_total
    factor = np.where(blocked, -np.inf, factor).astype(np.float32)

    def table(values: Floats) -> Floats:
        out: Floats = values[r_inv[:, None], c_inv[None, :]]
        return out

    known = _lexical(sims)
    concepts = rs.has_concepts.view[r_slots][:, None]
    known += np.where(concepts, w["concepts"] * sims["concepts"], 0.0).astype(np.float32)
    if semantic is not None:
        dense = rs.has_dense.view[r_slots][:, None] & cs.has_dense.view[c_slots][None, :]
        value = semantic_value(semantic, rs.sem_scale)
        known += np.where(dense, w["semantic"] * value, 0.0).astype(np.float32)
    inverse_total = table(inv_total)
    known *= inverse_total
    known += table(coded_share)
    for kind in inferring:
        # Inferred codes: each request row against each distinct set of candidate codes.
        sets_of, sets = code_sets(cs, kind)
        codes, probs = rs.inferred(kind, r_slots)
        values = w[f"inferred_{kind}"] * value_table(codes, probs, sets)
        known += values[:, sets_of[c_slots]] * inverse_total
    np.clip(known, 0.0, 1.0, out=known)
    with np.errstate(invalid="ignore"):
        known *= table(factor)
    np.nan_to_num(known, copy=False, nan=-np.inf, neginf=-np.inf)  # 0 x -inf: excluded too
    return known.astype(np.float32, copy=False)


def _coded_columns(store: KindStore, expired: Bools, rows: slice | Ints) -> Ints:
    """The ``rows`` (a slice of slots, or slots) of the columns that decide a pair's coded
    parts, side by side."""
    views = [
        store.ipc.view[rows],
        store.isic.view[rows],
        store.smask.view[rows],
        store.trl.view[rows],
        store.trl_min.view[rows],
        store.pmask.view[rows],
        store.tmask.view[rows],
        store.obit.view[rows],
        expired[rows],
        store.alive.view[rows],
        store.has_concepts.view[rows],
        store.has_dense.view[rows],
        *(store.has_inferred(kind)[rows] for kind in inferred_kinds()),
    ]
    out: Ints = np.column_stack(views).astype(np.int64)
    return out


def _keys(cols: Ints) -> list[bytes]:
    """Each row of ``_coded_columns`` as bytes, each column in the fewest bytes that hold
    it exactly (IPC and ISIC codes int32, the sector mask 9 bits, TRLs -1..100, the
    partnership mask 6 bits, country and owner masks int64, flags a byte): ~50 bytes
    a distinct set instead of ~150, and one set per listing where listings differ."""
    if not len(cols):
        return []
    n_codes = MAX_IPC + MAX_ISIC
    blocks = [
        cols[:, :n_codes].astype(np.int32),
        cols[:, n_codes : n_codes + 1].astype(np.int16),  # sectors
        cols[:, n_codes + 1 : n_codes + 4].astype(np.int8),  # trl, trl_min, partnership
        cols[:, n_codes + 4 : n_codes + 6],  # target countries, owner
        cols[:, n_codes + 6 :].astype(np.uint8),  # expired, alive and the other flags
    ]
    raw = np.hstack([np.ascontiguousarray(b).view(np.uint8).reshape(len(cols), -1) for b in blocks])
    return [row.tobytes() for row in raw]


def _distinct(store: KindStore, slots: Ints, now_ms: int) -> tuple[Ints, Ints]:
    """For ``slots``: the index of each one's set of coded columns among the distinct
    sets, and a slot having each distinct set. Worked out for the whole store once, then
    kept up to date slot by slot: a listing added, removed or expired since, or one whose
    vector or inferred codes arrived (``KindStore.coded_changed``), costs a dictionary
    look-up, not a sort of the store."""
    size = len(store.features)
    held = store.distinct
    if held is not None and held[0][1] != now_ms:
        # The listings that expired (or, with an earlier ``now_ms``, did not yet) since.
        lo, hi = sorted((held[0][1], now_ms))
        crossed = (store.expires.view > lo) & (store.expires.view <= hi)
        store.coded_changed(np.flatnonzero(crossed))
        held = store.distinct
    if held is not None and store.orphans > max(REKEY_MIN, held[0][0] * REKEY_SHARE):
        held = None  # too many sets left without a member: made again
    if held is None or held[0][0] > size:
        cols = _coded_columns(store, store.expires.view <= now_ms, slice(0, size))
        _, first, inverse = np.unique(cols, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1).astype(np.int64)
        first = first.astype(np.int64)
        store.distinct_ids = KeyIds(_keys(cols[first]))
        store.distinct = ((size, now_ms), inverse, first)
        store.rekey.clear()
        store.orphans = 0
    elif held[0][0] < size or store.rekey:
        store.distinct = _kept_up(store, store.expires.view <= now_ms, held, size, now_ms)
    elif held[0][1] != now_ms:  # no listing crossed its expiry
        store.distinct = ((size, now_ms), held[1], held[2])
    assert store.distinct is not None
    _, inverse, first = store.distinct
    local, used = _renumbered(inverse[slots], len(first))
    return local, first[used]


def _kept_up(
    store: KindStore,
    expired: Bools,
    held: tuple[tuple[int, int], Ints, Ints],
    size: int,
    now_ms: int,
) -> tuple[tuple[int, int], Ints, Ints]:
    """``store.distinct`` with the slots of ``store.rekey`` put in their sets again, then
    the slots added since it was made. A set whose representative changed gets another of
    its members; one left without any keeps none (-1: never found again, counted in
    ``store.orphans``)."""
    (done, _), inverse, first = held
    ids = store.distinct_ids
    assert ids is not None
    changed = np.array(sorted(store.rekey), dtype=np.int64)
    store.rekey.clear()
    first = first.copy()
    if len(changed):
        numbers = inverse[changed]
        leaving = numbers[first[numbers] == changed]  # sets whose representative changed
        if len(leaving):
            moving = np.zeros(len(inverse), dtype=np.bool_)
            moving[changed] = True
            stay = np.flatnonzero(np.isin(inverse, leaving) & ~moving)
            first[leaving] = -1
            kept, at = np.unique(inverse[stay], return_index=True)
            first[kept] = stay[at]  # the first member left of each
            store.orphans += len(leaving) - len(kept)
    firsts = first.tolist()
    added = _keys(_coded_columns(store, expired, slice(done, size)))
    moved = _keys(_coded_columns(store, expired, changed))

    def key_of(number: int) -> bytes:
        slot = int(firsts[number])
        if slot < 0:
            return b""
        if slot >= done:
            return added[slot - done]
        return _keys(_coded_columns(store, expired, slice(slot, slot + 1)))[0]

    def place(slot: int, row_key: bytes) -> int:
        found = ids.find(row_key, key_of)
        if found is None:
            found = len(firsts)
            firsts.append(slot)
            ids.add(row_key, found)
        return found

    for slot, row_key in zip(changed.tolist(), moved, strict=True):
        inverse[slot] = place(slot, row_key)
    extra = np.array([place(done + i, k) for i, k in enumerate(added)], dtype=np.int64)
    return (
        (size, now_ms),
        np.concatenate([inverse, extra]),
        np.asarray(firsts, dtype=np.int64),
    )


def _renumbered(ids: Ints, n: int) -> tuple[Ints, Ints]:
    """``np.unique(ids, return_inverse=True)`` for ids in ``range(n)``, by marking which
    are used rather than sorting them: the sort of 100,000 candidates' ids took ~23 ms of
    each one-listing match."""
    used_mask = np.zeros(n, dtype=np.bool_)
    used_mask[ids] = True
    used = np.flatnonzero(used_mask)
    number = np.cumsum(used_mask, dtype=np.int64) - 1
    local: Ints = number[ids]
    return local, used.astype(np.int64, copy=False)


def semantic_value(cosine: Floats, scale: tuple[float, float]) -> Floats:
    """An embedding cosine mapped to [0, 1] with the encoder's (zero, span)."""
    zero, span = scale
    out: Floats = np.clip((cosine - zero) / span, 0.0, 1.0).astype(np.float32)
    return out


def fit_components(
    rs: KindStore, ri: Ints, cs: KindStore, ci: Ints
) -> dict[str, tuple[Floats, Bools]]:
    """TRL, partnership and target-country fit of each pair, with where each is known."""
    trl, trl_min = cs.trl.view[ci], rs.trl_min.view[ri]
    p_req, p_cand = rs.pmask.view[ri], cs.pmask.view[ci]
    wanted = np.maximum(_popcount(p_req), 1)
    targets, owner = cs.tmask.view[ci], rs.obit.view[ri]
    return {
        "trl": ((trl >= trl_min).astype(np.float32), (trl >= 0) & (trl_min >= 0)),
        "partnership": (
            (_popcount(p_req & p_cand) / wanted).astype(np.float32),
            (p_req != 0) & (p_cand != 0),
        ),
        "target": (((targets & owner) != 0).astype(np.float32), targets != 0),
    }


def combine_fit(comps: dict[str, tuple[Floats, Bools]]) -> Floats:
    """Mean of the fit components present; FIT_NEUTRAL where none is."""
    shape = np.broadcast_shapes(*(a.shape for name in FIT_COMPONENTS for a in comps[name]))
    fit_sum = np.zeros(shape, dtype=np.float32)
    fit_n = np.zeros(shape, dtype=np.float32)
    for name in FIT_COMPONENTS:
        value, present = comps[name]
        fit_sum += np.where(present, value, 0.0).astype(np.float32)
        fit_n += present
    out: Floats = np.where(fit_n > 0, fit_sum / np.maximum(fit_n, 1), FIT_NEUTRAL).astype(
        np.float32
    )
    return out


def _full(values: Floats, n: int) -> Floats:
    out: Floats = np.broadcast_to(values, (n,)).astype(np.float32)
    return out


_BITS = np.array([bin(i).count("1") for i in range(64)], dtype=np.int64)


def _popcount(x: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Set bits of partnership masks (6 bits), by table."""
    out: npt.NDArray[np.int64] = _BITS[x & 63]
    return out
