"""Matching technology requests with offers and experts at the hub (DESIGN 9).

``Matcher`` is the entry point; ``Match`` is one proposed pair with its explanation.
``evaluate`` measures quality against labelled pairs, ``cli.eval_cmd`` is ``cattc eval``.

Both are loaded on first use: the node's server imports light modules of this package
(the ISIC codes, the hub's model choice) and must not load numpy and scipy with them,
which only the matching worker needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from node.matching.match import Match
    from node.matching.matcher import Matcher

__all__ = ["Match", "Matcher"]
_HOMES = {"Match": "node.matching.match", "Matcher": "node.matching.matcher"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
