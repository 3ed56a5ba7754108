"""The hub matcher's state on disk (``DATA_DIR/matching/matcher.snapshot``), so that a
matching worker's start restores what the last one had built instead of extracting the
features of every held summary again (extraction is most of a load: about 1-2 ms a
listing, where restoring is about 0.1 ms). The worker then reads only the keys and
versions of what is held and takes in the summaries that changed since, as a pass does.

The file holds two pickles: a header that says for which node, scoring and matching
code it was written (a digest of ``node/matching``'s sources and of the engine), and the
state: the matcher's attributes except its encoder, lexicon, settings and caches, and
the engine's versions of what it holds. A file whose header differs is ignored (and
replaced after the next load); one cut short by a stop was never renamed into place.
It is written only by the node's matching worker into its own data directory (mode
0600), which also holds the node's keys: it is no more trusted than they are.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import logging
import os
import pickle
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FORMAT = 1
DIR = "matching"
FILE = "matcher.snapshot"
# The matcher's attributes that are settings, models or caches, not what it holds: made
# by the constructor (or again on demand), never written.
NOT_STATE = frozenset(
    {
        "encoder",
        "_embedder",
        "lexicon",
        "semantic",
        "_sem_scale",
        "_now_ms",
        "exact_pairs",
        "defer_encoding",
        "text_source",
    }
)
CACHES = frozenset({"_tables", "_codes"})


@functools.cache
def code_digest() -> str:
    """A digest of the sources that decide what the matcher's state holds."""
    here = Path(__file__).resolve().parent
    sources = sorted((here.parent / "matching").glob("*.py"))
    sources.append(here / "match_engine.py")
    h = hashlib.sha256()
    for path in sources:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def path_in(data_dir: Path) -> Path:
    return data_dir / DIR / FILE


def header(node_id: str, scoring: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "node": node_id,
        "scoring": scoring,
        "code": code_digest(),
        "python": sys.version,
        "numpy": importlib.metadata.version("numpy"),
    }


def matcher_state(matcher: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(matcher).items() if k not in NOT_STATE | CACHES}


def restore_matcher(matcher: Any, state: dict[str, Any]) -> None:
    """``matcher`` (new, made with the same encoder) holds ``state`` now."""
    for key, value in state.items():
        setattr(matcher, key, value)


def save(data_dir: Path, head: dict[str, Any], state: dict[str, Any]) -> bool:
    """Write the snapshot (to a new file, renamed into place); False (logged) if it could
    not be written: the next start then loads from the database."""
    target = path_in(data_dir)
    tmp = target.with_suffix(".tmp")
    try:
        target.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            pickle.dump(head, f, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
        logger.warning("matcher snapshot not written: %s", exc)
        tmp.unlink(missing_ok=True)
        return False
    return True


def load(data_dir: Path, head: dict[str, Any]) -> dict[str, Any] | None:
    """The state of the snapshot written with ``head``, or None (none, another node's,
    scoring or code, or unreadable)."""
    target = path_in(data_dir)
    try:
        with target.open("rb") as f:
            if pickle.load(f) != head:  # noqa: S301 - written by this node's worker
                logger.info("matcher snapshot is of another scoring or code: loading afresh")
                return None
            state: dict[str, Any] = pickle.load(f)  # noqa: S301
    except FileNotFoundError:
        return None
    except Exception as exc:  # a damaged file is a load from the database, not a failure
        logger.warning("matcher snapshot unreadable (%s): loading afresh", exc)
        return None
    return state


def remove(data_dir: Path) -> None:
    path_in(data_dir).unlink(missing_ok=True)
