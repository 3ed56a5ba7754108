"""A proposed match and the reasons for it, in a form people and match notices can read.

DESIGN 9 asks that every match explain itself: besides the score, a ``Match`` carries its
named components, the terms and concepts both sides use, and the taxonomy codes they share,
computed from the two listings' features when the match is made (``evidence``). The
``semantic`` component (embedding similarity, which finds a Lao request for an English
offer where no term is shared) comes with ``semantic_evidence``: the sentence of one side,
named by ``side``, that is closest in meaning to the other listing, and the model that
judged it. It quotes that side's own text: whoever relays a match applies that side's relay
rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from node.matching.features import Ref


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
