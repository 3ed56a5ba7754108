"""A proposed match and the reasons for it, in a form people and match notices can read.

DESIGN 9 asks that every match explain itself: besides the score, a ``Match`` carries its
named components, the terms and concepts both sides use, and the taxonomy codes they
share, computed from the two listings' features when the match is made. The ``semantic``
component (embedding similarity, which finds a Lao request for an English offer where no
term is shared) comes with ``semantic_evidence``: the sentence of one side, named by
``side``, that is closest in meaning to the other listing, and the model that judged it.
It quotes that side's own text: whoever relays a match applies that side's relay rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from node.matching.codes import ipc_symbol
from node.matching.concepts import label
from node.matching.features import Ref
from node.matching.index import Vocabulary

MAX_SHARED_TERMS = 8
MAX_SHARED_CONCEPTS = 6
_ISIC_SECTIONS = "ABCDEFGHIJKLMNOPQRSTU"


@dataclass(frozen=True)
class SemanticEvidence:
    """The sentence of the ``side`` listing ("request" or "candidate") nearest in meaning
    to the other listing, with its cosine under ``model``."""

    side: str
    sentence: str
    similarity: float
    model: str

    def to_json(self) -> dict[str, object]:
        return {
            "side": self.side,
            "sentence": self.sentence,
            "similarity": self.similarity,
            "model": self.model,
        }


@dataclass(frozen=True)
class Match:
    """One request matched with one candidate (a technology offer or an expert)."""

    request: Ref
    candidate: Ref
    kind: str
    score: float
    components: dict[str, float] = field(default_factory=dict)
    shared_terms: tuple[str, ...] = ()
    shared_concepts: tuple[str, ...] = ()
    shared_codes: tuple[str, ...] = ()
    candidate_title: str = ""
    semantic_evidence: SemanticEvidence | None = None
    inferred_codes: tuple[str, ...] = ()

    def explanation(self) -> str:
        """One paragraph: the score, how it is made up, and what the two sides share."""
        req = f"{self.request[0]}/{self.request[1]}"
        cand = f"{self.candidate[0]}/{self.candidate[1]}"
        title = f' "{self.candidate_title}"' if self.candidate_title else ""
        parts = [f"{self.kind} {cand}{title} for request {req}: score {self.score:.3f}"]
        comps = self.components
        rel = [f"{k} {v:.2f}" for k, v in comps.items() if k not in _FIT_KEYS]
        if "relevance" in comps:
            parts.append(f"relevance {comps['relevance']:.2f} ({', '.join(rel)})")
        fit = [f"{k} {comps[k]:.2f}" for k in ("trl", "partnership", "target") if k in comps]
        if "fit" in comps:
            parts.append(f"fit {comps['fit']:.2f} ({', '.join(fit) or 'no fit data'})")
        if self.shared_terms:
            parts.append("shared terms: " + ", ".join(self.shared_terms))
        if self.shared_concepts:
            parts.append("shared concepts: " + ", ".join(self.shared_concepts))
        if self.shared_codes:
            parts.append("shared codes: " + ", ".join(self.shared_codes))
        if self.inferred_codes:
            parts.append("inferred from the request's text: " + ", ".join(self.inferred_codes))
        if self.semantic_evidence is not None:
            ev = self.semantic_evidence
            parts.append(
                f"closest in meaning ({ev.model}, {ev.side} side, {ev.similarity:.2f}): "
                f'"{ev.sentence}"'
            )
        return "; ".join(parts)

    def to_json(self) -> dict[str, object]:
        return {
            "request": list(self.request),
            "candidate": list(self.candidate),
            "kind": self.kind,
            "score": self.score,
            "components": self.components,
            "shared_terms": list(self.shared_terms),
            "shared_concepts": list(self.shared_concepts),
            "shared_codes": list(self.shared_codes),
            "candidate_title": self.candidate_title,
            "inferred_codes": list(self.inferred_codes),
            "semantic_evidence": (
                None if self.semantic_evidence is None else self.semantic_evidence.to_json()
            ),
        }


_FIT_KEYS = frozenset({"relevance", "fit", "trl", "partnership", "target"})


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
            text = f"ISIC section {_ISIC_SECTIONS[code // 100 - 1]}"
        else:
            continue
        if text not in out:
            out.append(text)
    return tuple(out)
