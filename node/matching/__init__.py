"""Matching technology requests with offers and experts at the hub (DESIGN 9).

``Matcher`` is the entry point; ``Match`` is one proposed pair with its explanation.
``evaluate`` measures quality against labelled pairs, ``cli.eval_cmd`` is ``cattc eval``.
"""

from node.matching.match import Match
from node.matching.matcher import Matcher

__all__ = ["Match", "Matcher"]
