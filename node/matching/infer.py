"""Codes inferred from a request's text when it names none: sector, IPC class, ISIC division.

A cooperative describing its problem rarely gives IPC or ISIC codes, and may give no
sector; the offers and experts the hub holds carry them. ``CodeModel`` learns from those
candidates a nearest-centroid classifier (Rocchio) per kind of code: the centroid of a
code is the mean of the idf-weighted, L2-normalised rows of the candidates that carry it,
in each feature space the matcher already has (words, concepts of the multilingual
lexicon, character n-grams, and the embedding when an encoder is on). A request's score
for a code is the weighted sum of its cosines to the code's centroids; a softmax with
temperature ``TEMPERATURE`` turns the scores into probabilities and the ``TOP`` most
probable codes are kept with them.

The scorer uses them as soft evidence only where the request has no code of that kind:
components ``inferred_sector``, ``inferred_ipc`` and ``inferred_isic`` are the probability
mass the request's inferred codes put on the candidate's own codes (IPC at class level,
ISIC at division level). A request whose text shares nothing with any centroid gets no
inferred code. A request is inferred when it arrives; the model is fitted again once 2% of
the candidates it learnt from have changed (``matcher.REFIT_SHARE``), and every request
is then inferred again with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

from node.matching.codes import ISIC_SECTIONS, ipc_symbol
from node.matching.features import SECTORS
from node.matching.store import INFER_KINDS, INFER_TOP, SPACES, KindStore

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]

KINDS = INFER_KINDS
TOP = INFER_TOP  # codes kept per kind and request
# How much each feature space counts in a code's score (cosines to the centroids).
# Chosen on the dev split (bench/eval/README.md, "Requests without codes"), like TEMPERATURE.
# The embedding's cosines count in units of the encoder's span (``calibration.scale_of``),
# so that models whose cosines are compressed (e5) weigh as much as the others.
SPACE_WEIGHTS = {"text": 1.0, "concepts": 1.0, "ngrams": 0.0, "dense": 0.6}
TEMPERATURE = 0.1
MIN_SUPPORT = 1  # candidates carrying a code for it to get a centroid
FIT_ROWS = 20_000  # candidates whose rows are weighed at once while fitting


def candidate_codes(store: KindStore, kind: str, slots: Ints) -> npt.NDArray[np.int64]:
    """The codes of ``kind`` that the listings at ``slots`` carry, one row each (0 pads):
    sector index + 1, IPC class (``code // 100``), ISIC division (its code, when it has a
    division)."""
    if kind == "sector":
        return _sector_codes(store.smask.view[slots])
    if kind == "ipc":
        return (store.ipc.view[slots].astype(np.int64) // 100).astype(np.int64)
    isic = store.isic.view[slots].astype(np.int64)
    return np.where(isic % 100 > 0, isic, 0).astype(np.int64)


def _sector_codes(masks: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    bits = np.arange(len(SECTORS), dtype=np.int64)
    has = ((masks.astype(np.int64)[:, None] >> bits[None, :]) & 1).astype(bool)
    out: npt.NDArray[np.int64] = np.where(has, bits[None, :] + 1, 0)
    return out


def code_sets(store: KindStore, kind: str) -> tuple[Ints, npt.NDArray[np.int64]]:
    """The distinct sets of codes of ``kind`` among the slots of ``store``: the index of
    each slot's set, and the sets (rows of ``candidate_codes``). A slot's codes never
    change (a new version takes a new slot), so they are kept until a slot is added."""
    size = len(store.features)
    held = store.code_sets.get(kind)
    if held is not None and held[0] == size:
        return held[1], held[2]
    if kind == "sector":
        masks, inverse = np.unique(store.smask.view, return_inverse=True)
        sets = _sector_codes(masks)
    else:
        every = candidate_codes(store, kind, np.arange(size, dtype=np.int64))
        sets, inverse = np.unique(every, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    store.code_sets[kind] = (size, inverse, sets)
    return inverse, sets


def code_label(kind: str, code: int) -> str:
    """How an inferred code reads in an explanation."""
    if kind == "sector":
        return f"sector {SECTORS[code - 1]}"
    if kind == "ipc":
        return f"IPC class {ipc_symbol(code * 100)}"
    return f"ISIC {code % 100:02d} (section {ISIC_SECTIONS[code // 100 - 1]})"


def _spaces() -> tuple[str, ...]:
    """The sparse spaces the classifier weighs."""
    return tuple(space for space in SPACES if SPACE_WEIGHTS[space] > 0)


def _supported(codes: npt.NDArray[np.int64]) -> Ints:
    """The codes carried by at least ``MIN_SUPPORT`` candidates (rows of ``codes``),
    sorted."""
    distinct, counts = np.unique(codes[codes > 0], return_counts=True)
    out: Ints = distinct[counts >= MIN_SUPPORT].astype(np.int64)
    return out


def _membership(codes: npt.NDArray[np.int64], kept: Ints) -> sp.csr_matrix:
    """(kept codes x rows of ``codes``): 1 where the row carries the code."""
    rows, cols = np.nonzero(codes > 0)
    values = codes[rows, cols]
    keep = np.isin(values, kept)
    rows, values = rows[keep], values[keep]
    member = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (np.searchsorted(kept, values), rows)),
        shape=(len(kept), codes.shape[0]),
    )
    member.sum_duplicates()
    member.data[:] = 1.0
    return member


@dataclass(frozen=True)
class _Centroids:
    codes: Ints  # sorted
    sparse: dict[str, sp.csr_matrix]  # space -> (codes x terms), rows L2-normalised
    dense: Floats | None  # (codes x dim), rows L2-normalised


def _normalise_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    sq = np.asarray(m.multiply(m).sum(axis=1)).ravel()
    norms = np.sqrt(sq)
    norms[norms == 0] = 1.0
    return (sp.diags(1.0 / norms) @ m).astype(np.float32).tocsr()


def _pad(m: sp.csr_matrix, width: int) -> sp.csr_matrix:
    if m.shape[1] == width:
        return m
    if m.shape[1] > width:
        return m[:, :width].tocsr()
    return sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width))


class CodeModel:
    """Nearest-centroid classifiers of sector, IPC class and ISIC division, fitted on the
    candidates of ``stores`` (offers and experts), ``size`` of them. Only the ``kinds``
    given are fitted (those the scorer weighs), in the spaces of non-zero weight.

    A centroid is summed ``FIT_ROWS`` candidates at a time: the weighed rows of every
    candidate at once (float64 on the way) were the first match list's largest
    temporary, ~200 MB at 200,000 listings, for a few dozen centroids."""

    def __init__(self, stores: list[KindStore], kinds: tuple[str, ...] = KINDS) -> None:
        from node.matching.bulk import queries

        self.size = sum(len(store) for store in stores)
        self.fitted: dict[str, _Centroids] = {}
        live = [(store, store.live_slots()) for store in stores]
        live = [(store, slots) for store, slots in live if len(slots)]
        if not kinds or not live:
            return
        kept = {
            kind: _supported(np.concatenate([candidate_codes(s, kind, sl) for s, sl in live]))
            for kind in kinds
        }
        kept = {kind: codes for kind, codes in kept.items() if len(codes)}
        if not kept:
            return
        dense_ok = SPACE_WEIGHTS["dense"] > 0 and all(s.dense is not None for s in stores)
        widths = {
            space: max(len(store.sparse[space].vocab.idf()) for store, _ in live)
            for space in _spaces()
        }
        sums = {
            kind: {
                space: sp.csr_matrix((len(codes), widths[space]), dtype=np.float32)
                for space in _spaces()
            }
            for kind, codes in kept.items()
        }
        dense_sums: dict[str, Floats] = {}
        for store, slots in live:
            for start in range(0, len(slots), FIT_ROWS):
                block = slots[start : start + FIT_ROWS]
                members = {
                    kind: _membership(candidate_codes(store, kind, block), codes)
                    for kind, codes in kept.items()
                }
                for space in _spaces():
                    q = _pad(queries(store.sparse[space], block), widths[space])
                    for kind, member in members.items():
                        sums[kind][space] = sums[kind][space] + member @ q
                if dense_ok and store.dense is not None:
                    vectors = store.dense.unit(block)  # zero without a vector
                    for kind, member in members.items():
                        part = np.asarray(member @ vectors, dtype=np.float32)
                        held = dense_sums.get(kind)
                        dense_sums[kind] = part if held is None else held + part
        for kind, codes in kept.items():
            sparse = {space: _normalise_rows(m) for space, m in sums[kind].items()}
            cent_dense = None
            cent = dense_sums.get(kind)
            if cent is not None:
                norms = np.linalg.norm(cent, axis=1, keepdims=True)
                norms[norms == 0] = 1.0
                cent_dense = (cent / norms).astype(np.float32)
            self.fitted[kind] = _Centroids(codes.astype(np.int64), sparse, cent_dense)

    def infer(self, store: KindStore, slots: Ints) -> dict[str, tuple[Ints, Floats]]:
        """For each kind: the ``TOP`` most probable codes (0 pads) and their probabilities
        for the listings at ``slots`` of ``store`` (requests); zeros where the text shares
        nothing with any centroid."""
        from node.matching.bulk import queries

        out: dict[str, tuple[Ints, Floats]] = {}
        b = len(slots)
        qs = {}
        if b and self.fitted:
            qs = {space: queries(store.sparse[space], slots) for space in _spaces()}
        for kind in KINDS:
            codes = np.zeros((b, TOP), dtype=np.int64)
            probs = np.zeros((b, TOP), dtype=np.float32)
            fitted = self.fitted.get(kind)
            if fitted is None or not b:
                out[kind] = (codes, probs)
                continue
            score = np.zeros((b, len(fitted.codes)), dtype=np.float32)
            for space in _spaces():
                cent = fitted.sparse[space]
                q = _pad(qs[space], cent.shape[1])
                score += SPACE_WEIGHTS[space] * np.asarray((q @ cent.T).toarray(), np.float32)
            dense_w = SPACE_WEIGHTS["dense"]
            if dense_w and fitted.dense is not None and store.dense is not None:
                cos = store.dense.unit(slots) @ fitted.dense.T
                cos -= cos.mean(axis=1, keepdims=True)  # only the differences between codes
                cos[~store.has_dense.view[slots]] = 0.0
                score += (dense_w / store.sem_scale[1]) * cos
            signal = score.max(axis=1) > 0
            if not dense_w:
                signal &= (
                    np.asarray(
                        sum(abs(qs[s]).sum(axis=1) for s in SPACES if SPACE_WEIGHTS[s])
                    ).ravel()
                    > 0
                )
            z = (score - score.max(axis=1, keepdims=True)) / TEMPERATURE
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            take = min(TOP, p.shape[1])
            best = np.argsort(-p, axis=1, kind="stable")[:, :take]
            codes[:, :take] = fitted.codes[best]
            probs[:, :take] = np.take_along_axis(p, best, axis=1)
            codes[~signal] = 0
            probs[~signal] = 0.0
            out[kind] = (codes, probs)
        return out


def inferred_value(kind: str, r_codes: Ints, r_probs: Floats, cand: KindStore, ci: Ints) -> Floats:
    """Per pair: the probability mass that the request's inferred codes (rows of
    ``r_codes``/``r_probs``, one per pair or one for all) put on the candidate's codes."""
    c_codes = candidate_codes(cand, kind, ci)
    value = np.zeros(max(len(ci), len(r_codes)), dtype=np.float32)
    for j in range(r_codes.shape[1]):
        code = r_codes[:, j : j + 1]
        hit = ((c_codes == code) & (code > 0)).any(axis=1)
        value += np.where(hit, r_probs[:, j], 0.0).astype(np.float32)
    out: Floats = np.clip(value, 0.0, 1.0).astype(np.float32)
    return out


def value_table(r_codes: Ints, r_probs: Floats, c_sets: npt.NDArray[np.int64]) -> Floats:
    """``inferred_value`` of every request row (``r_codes``/``r_probs``) against every set
    of candidate codes (rows of ``c_sets``, 0 pads): (requests x sets), one sparse product
    over the codes the requests were given."""
    b, n = len(r_codes), len(c_sets)
    labels = np.unique(r_codes[r_codes > 0])
    if not b or not n or not len(labels):
        return np.zeros((b, n), dtype=np.float32)
    r_pos = np.searchsorted(labels, r_codes).clip(max=len(labels) - 1)
    r_rows, r_cols = np.nonzero(r_codes > 0)
    left = sp.csr_matrix(
        (r_probs[r_rows, r_cols], (r_rows, r_pos[r_rows, r_cols])), shape=(b, len(labels))
    )
    c_pos = np.searchsorted(labels, c_sets).clip(max=len(labels) - 1)
    c_rows, c_cols = np.nonzero((labels[c_pos] == c_sets) & (c_sets > 0))
    right = sp.csr_matrix(
        (np.ones(len(c_rows), dtype=np.float32), (c_pos[c_rows, c_cols], c_rows)),
        shape=(len(labels), n),
    )
    right.sum_duplicates()
    right.data[:] = 1.0
    out: Floats = np.clip(np.asarray((left @ right).toarray(), dtype=np.float32), 0.0, 1.0)
    return out
