"""The score of a request-candidate pair: named components, hard constraints, one number.

score = relevance x (FIT_FLOOR + (1 - FIT_FLOOR) x fit), in [0, 1]:

- relevance: weighted mean of the relevance components present for the pair (text,
  concepts, ngrams, semantic, ipc, isic, sector). A component is absent when a side lacks
  the data (a field the owner's policy withheld, a request without IPC codes, no model):
  its weight goes to the others instead of counting as a mismatch.
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

from node.matching.codes import ipc_similarity, isic_similarity
from node.matching.store import KindStore

RELEVANCE_WEIGHTS: dict[str, float] = {
    "text": 0.30,
    "concepts": 0.30,
    "ngrams": 0.15,
    "semantic": 0.30,
    "ipc": 0.15,
    "isic": 0.05,
    "sector": 0.05,
}
FIT_COMPONENTS = ("trl", "partnership", "target")
FIT_FLOOR = 0.8
FIT_NEUTRAL = 0.5
# Sentence-embedding cosines of unrelated listings sit around 0.1: rescale to [0, 1].
SEMANTIC_ZERO, SEMANTIC_SPAN = 0.10, 0.60

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
    comps["ngrams"] = (sims["ngrams"], everywhere)
    if semantic is not None:
        present = rs.has_dense.view[ri] & cs.has_dense.view[ci]
        value = np.clip((semantic - SEMANTIC_ZERO) / SEMANTIC_SPAN, 0.0, 1.0).astype(np.float32)
        comps["semantic"] = (value, present)
    r_ipc, c_ipc = rs.ipc.view[ri], cs.ipc.view[ci]
    comps["ipc"] = (ipc_similarity(r_ipc, c_ipc), (r_ipc[:, 0] > 0) & (c_ipc[:, 0] > 0))
    r_isic, c_isic = rs.isic.view[ri], cs.isic.view[ci]
    comps["isic"] = (isic_similarity(r_isic, c_isic), (r_isic[:, 0] > 0) & (c_isic[:, 0] > 0))
    r_sec, c_sec = rs.smask.view[ri], cs.smask.view[ci]
    comps["sector"] = (((r_sec & c_sec) != 0).astype(np.float32), (r_sec != 0) & (c_sec != 0))

    trl, trl_min = cs.trl.view[ci], rs.trl_min.view[ri]
    comps["trl"] = ((trl >= trl_min).astype(np.float32), (trl >= 0) & (trl_min >= 0))
    p_req, p_cand = rs.pmask.view[ri], cs.pmask.view[ci]
    wanted = np.maximum(_popcount(p_req), 1)
    comps["partnership"] = (
        (_popcount(p_req & p_cand) / wanted).astype(np.float32),
        (p_req != 0) & (p_cand != 0),
    )
    targets, owner = cs.tmask.view[ci], rs.obit.view[ri]
    comps["target"] = (((targets & owner) != 0).astype(np.float32), targets != 0)

    weighted = np.zeros(n, dtype=np.float32)
    total = np.zeros(n, dtype=np.float32)
    for name, weight in RELEVANCE_WEIGHTS.items():
        if name in comps:
            value, present = comps[name]
            weighted += np.where(present, weight * value, 0.0).astype(np.float32)
            total += np.where(present, weight, 0.0).astype(np.float32)
    relevance = np.clip(weighted / np.maximum(total, 1e-9), 0.0, 1.0)
    fit_sum = np.zeros(n, dtype=np.float32)
    fit_n = np.zeros(n, dtype=np.float32)
    for name in FIT_COMPONENTS:
        value, present = comps[name]
        fit_sum += np.where(present, value, 0.0).astype(np.float32)
        fit_n += present
    fit = np.where(fit_n > 0, fit_sum / np.maximum(fit_n, 1), FIT_NEUTRAL).astype(np.float32)
    comps["relevance"] = (relevance.astype(np.float32), everywhere)
    comps["fit"] = (fit, everywhere)
    score = (relevance * (FIT_FLOOR + (1.0 - FIT_FLOOR) * fit)).astype(np.float32)
    blocked = np.zeros(n, dtype=np.bool_)
    for mask in violations(rs, ri, cs, ci, now_ms).values():
        blocked |= mask
    return Scored(score=score, allowed=~blocked, components=comps)


def _popcount(x: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    count = np.zeros(x.shape, dtype=np.int64)
    value = x.copy()
    for _ in range(8):  # partnership masks use 6 bits
        count += value & 1
        value >>= 1
    return count
