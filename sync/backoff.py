"""Exponential backoff with a cap, for peers that keep failing."""

from __future__ import annotations


def backoff_ms(failures: int, *, base_ms: int = 2_000, cap_ms: int = 600_000) -> int:
    """Wait before the next attempt after ``failures`` failures in a row (0: none)."""
    if failures <= 0:
        return 0
    return int(min(cap_ms, base_ms * 2 ** min(failures - 1, 30)))
