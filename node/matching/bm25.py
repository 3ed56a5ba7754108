"""The baseline the matcher must beat: plain BM25 (bm25s) over the listings' text.

No stemming, no concepts, no codes, no constraints: the library's own tokenizer with its
English stopword list, over title (every language), summary, keywords and need.
"""

from __future__ import annotations

from collections.abc import Sequence

import bm25s  # type: ignore[import-untyped]
import numpy as np


class BM25Baseline:
    """An index of documents; ``rank(query, k)`` returns the ids of the best ``k``."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        self.ids = list(ids)
        self._retriever = bm25s.BM25()
        if self.ids:
            corpus = bm25s.tokenize(list(texts), stopwords="en", show_progress=False)
            self._retriever.index(corpus, show_progress=False)

    def rank(self, query: str, k: int = 10) -> list[str]:
        if not self.ids:
            return []
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.vocab:
            return []
        k = min(k, len(self.ids))
        docs, scores = self._retriever.retrieve(tokens, k=k, show_progress=False)
        return [
            self.ids[int(d)] for d, s in zip(np.ravel(docs), np.ravel(scores), strict=True) if s > 0
        ]
