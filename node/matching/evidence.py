"""What two matched listings share, for a ``Match``'s explanation: the terms and concepts
both use (from their weighted term rows) and the taxonomy codes they have in common."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from node.matching.codes import ISIC_SECTIONS, ipc_symbol
from node.matching.concepts import label
from node.matching.index import Vocabulary

MAX_SHARED_TERMS = 8
MAX_SHARED_CONCEPTS = 6


Row = tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]


def shared_terms(
    req: Row, cand: Row, vocab: Vocabulary, surface: Sequence[str] = ()
) -> tuple[str, ...]:
    """The common stems that weigh most in both listings (their rows in the text
    space), as the request spells them (``surface``: one spelling per column of its row,
    "" for the stem itself)."""
    idf = vocab.idf()
    common, ri, ci = np.intersect1d(req[0], cand[0], assume_unique=True, return_indices=True)
    if not len(common):
        return ()
    w = idf[common]
    weights = (req[1][ri].astype(np.float64) * cand[1][ci] * w * w).tolist()
    terms = [vocab.terms[c] for c in common.tolist()]
    ranked = sorted(range(len(terms)), key=lambda i: (-weights[i], terms[i]))
    out = []
    for i in ranked[:MAX_SHARED_TERMS]:
        spelled = surface[ri[i]] if ri[i] < len(surface) else ""
        out.append(spelled or terms[i])
    return tuple(out)


def shared_concepts(req: Row, cand: Row, vocab: Vocabulary) -> tuple[str, ...]:
    idf = vocab.idf()
    common = np.intersect1d(req[0], cand[0], assume_unique=True)
    weights = idf[common].tolist()
    concepts = [vocab.terms[c] for c in common.tolist()]
    ranked = sorted(range(len(concepts)), key=lambda i: (-weights[i], concepts[i]))
    return tuple(label(concepts[i]) for i in ranked[:MAX_SHARED_CONCEPTS])


Codes = tuple[tuple[int, ...], tuple[int, ...]]  # a listing's (IPC codes, ISIC codes)


def shared_codes(req: Codes, cand: Codes) -> tuple[str, ...]:
    """IPC codes shared at the deepest common level, then ISIC divisions (or sections)."""
    out: list[str] = []
    (req_ipc, req_isic), (cand_ipc, cand_isic) = req, cand
    for code in req_ipc:
        best = ""
        for other in cand_ipc:
            if code == other and code % 100:
                best = f"IPC {ipc_symbol(code)}"
                break
            if code // 100 == other // 100 and (code // 100) % 100 and not best:
                best = f"IPC {ipc_symbol(code - code % 100)} (class)"
        if best and best not in out:
            out.append(best)
    for code in req_isic:
        if code % 100 and code in cand_isic:
            text = f"ISIC {code % 100:02d}"
        elif any(code // 100 == other // 100 for other in cand_isic):
            text = f"ISIC section {ISIC_SECTIONS[code // 100 - 1]}"
        else:
            continue
        if text not in out:
            out.append(text)
    return tuple(out)
