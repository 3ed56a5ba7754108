"""The matcher's use of its sentence-embedding encoder: encoding with progress, and the
sentence that explains a semantic score.

Kept apart from ``matcher`` (which holds the stores and top lists) so that the two things
an embedding model adds to matching, vectors on arrival and evidence in explanations,
read in one place. ``Embedder`` wraps whatever ``Encoder`` the matcher was given.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np

from node.matching.calibration import scale_of
from node.matching.index import FloatArray
from node.matching.match import Match, SemanticEvidence
from node.matching.model_choice import ENV_MODEL, OFF
from node.matching.semantic import (
    Encoder,
    SemanticStatus,
    load_default,
    load_named,
)
from node.matching.text import sentences

logger = logging.getLogger(__name__)

EVIDENCE_SENTENCES = 3  # sentences of a listing weighed as the semantic evidence
PROGRESS_EVERY = 1_000  # texts encoded between two progress lines in the log
DEFAULT = "default"


def resolve(encoder: Encoder | str | None) -> tuple[Encoder | None, SemanticStatus]:
    """The matcher's ``encoder`` argument: ``"default"`` loads the installed model, ``"off"``
    (as ``CATTC_SEMANTIC`` spells it) means switched off, and a model's name that model (or
    None with the reason); an Encoder is used as given, None means lexical only."""
    if encoder == DEFAULT:
        return load_default()
    if isinstance(encoder, str) and encoder in OFF:
        return None, SemanticStatus(False, None, f"switched off by {ENV_MODEL}")
    if isinstance(encoder, str):
        return load_named(encoder)  # an unknown name: lexical, with the reason
    if encoder is None:
        return None, SemanticStatus(False, None, "no sentence-embedding model configured")
    return encoder, SemanticStatus(True, encoder.name, None)


class Embedder:
    """Encodes requests as queries and candidates as passages (for an asymmetric model),
    and logs progress every ``PROGRESS_EVERY`` texts with the rate so far."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.asymmetric = bool(getattr(encoder, "asymmetric", False))
        self.encoded = 0
        self.seconds = 0.0
        zero, span = getattr(encoder, "scale", None) or scale_of(getattr(encoder, "name", ""))
        self.scale = (float(zero), float(span))

    def encode(self, texts: list[str], requests: bool) -> FloatArray:
        started = time.perf_counter()
        if self.asymmetric:
            out: FloatArray = self.encoder.encode(texts, query=requests)  # type: ignore[call-arg]
        else:
            out = self.encoder.encode(texts)
        before, self.encoded = self.encoded, self.encoded + len(texts)
        self.seconds += time.perf_counter() - started
        if self.encoded // PROGRESS_EVERY > before // PROGRESS_EVERY:
            logger.info(
                "semantic matching: %d texts encoded with %s (%.1f per second)",
                self.encoded,
                self.encoder.name,
                self.encoded / max(self.seconds, 1e-9),
            )
        return out

    def release(self) -> None:
        """Let the model drop what it can rebuild (the numpy e5's scratch and packed
        weights) until it is next used: before a bulk ranking, the matching worker's
        highest point of memory."""
        release = getattr(self.encoder, "release", None)
        if release is not None:
            release()

    def with_evidence(
        self, text: str, kind: str, matches: list[Match], others: list[FloatArray | None]
    ) -> list[Match]:
        """Name, for each match, the sentence of ``text`` (a listing's of ``kind``) nearest
        in meaning to the other listing, whose stored vector is in ``others``. The
        sentences are encoded once, in one batch (and cached by the encoder)."""
        lines = [s.strip() for line in text.splitlines() for s in sentences(line)]
        picked = [s for s in dict.fromkeys(lines) if len(s) > 3][:EVIDENCE_SENTENCES]
        if not picked:
            return matches
        vectors = self.encode(picked, kind == "request")
        side = "request" if kind == "request" else "candidate"
        out = []
        for match, other in zip(matches, others, strict=True):
            if other is None or "semantic" not in match.components:
                out.append(match)
                continue
            sims = vectors @ other
            best = int(np.argmax(sims))
            evidence = SemanticEvidence(
                side, picked[best], round(float(sims[best]), 4), self.encoder.name
            )
            out.append(replace(match, semantic_evidence=evidence))
        return out
