"""Where the tests find the shared, external data: ``../shared`` beside the project root.

The data there (RFC and Wycheproof vectors, the sample listings) is read in place and never
copied into this repository. A missing directory must make the tests fail, not skip:
use :func:`require` to get a path that is known to exist.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
TESTDATA = SHARED / "testdata"
DATA = SHARED / "data"
VECTORS = TESTDATA / "vectors"


def require(path: Path) -> Path:
    """Return ``path``, failing (never skipping) the calling test when it does not exist."""
    if not path.exists():
        pytest.fail(f"shared test data missing: {path} (expected beside the project root)")
    return path
