"""How each encoder's cosines become the semantic component: ``clip((cos - zero) / span,
0, 1)``, with (zero, span) per model, chosen on the dev split (bench/eval/README.md).

Kept apart from the encoders (``semantic``), whose code is part of the identity of the
hub's stored vectors (``node.hub.vector_file``): a new calibration changes scores, not
vectors, so it re-matches the hub's listings once (``node.hub.match_engine``'s scoring
identity names the scale) without encoding them again, which takes hours at 200,000.
"""

from __future__ import annotations

# e5's cosines are compressed: unrelated texts sit near 0.78 and a paraphrase near 0.9.
SCALES: dict[str, tuple[float, float]] = {
    "e5": (0.74, 0.10),
    "e5-static": (0.35, 0.30),
    "use": (0.10, 0.45),
    "minilm": (0.10, 0.60),
}
# Models whose unrelated pairs sit near 0.1 (and the lexical matcher, which has none).
DEFAULT_SCALE = (0.10, 0.60)


def scale_of(model: str) -> tuple[float, float]:
    """(zero, span) for ``model``'s cosines."""
    return SCALES.get(model, DEFAULT_SCALE)
