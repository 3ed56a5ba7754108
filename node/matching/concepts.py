"""Concept expansion: map what a listing says to the technology-transfer concepts it is about.

Requests often describe a problem ("our prawns die after heavy rain", "fewer tappers")
while offers name a technology ("biofloc keeps ammonia low", "micro-tapping with ethylene
stimulation"). Word overlap misses these; a small hand-written lexicon of concepts per
sector, each triggered both by the problem wording and by the solution wording, bridges
them without a model. The lexicon lives in ``lexicon_agri`` and ``lexicon_tech``.

Trigger syntax, one string per concept with ``|`` between triggers:

- ``water quality``: the words in this order (after stemming and dropping stopwords);
- ``die+rain``: every word somewhere in the same sentence (or title, or keyword);
- a trigger in an unspaced script (``กุ้ง``, ``榴莲``): a substring of the text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from node.matching.lexicon_agri import AGRI_CONCEPTS
from node.matching.lexicon_tech import TECH_CONCEPTS
from node.matching.text import fold, has_unspaced, plain_stems, plain_stems_of, raw_words, sentences


@dataclass(frozen=True, slots=True)
class _Conjunction:
    concept: str
    words: frozenset[str]


class ConceptLexicon:
    """A compiled lexicon: ``find(texts)`` counts the concepts that the texts trigger."""

    def __init__(self, concepts: Mapping[str, str]) -> None:
        self.names: tuple[str, ...] = tuple(concepts)
        phrases: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        conjunctions: dict[str, list[_Conjunction]] = {}
        substrings: list[tuple[str, str]] = []
        for concept, spec in concepts.items():
            for trigger in (t.strip() for t in spec.split("|")):
                if not trigger:
                    continue
                if has_unspaced(trigger):
                    substrings.append((fold(trigger), concept))
                elif "+" in trigger:
                    words = frozenset(w for part in trigger.split("+") for w in plain_stems(part))
                    if words:
                        first = min(words)
                        conjunctions.setdefault(first, []).append(_Conjunction(concept, words))
                else:
                    seq = tuple(plain_stems(trigger))
                    if seq:
                        phrases.setdefault(seq[0], []).append((seq[1:], concept))
        for entries in phrases.values():
            entries.sort(key=lambda e: -len(e[0]))  # longest phrase first
        self._phrases = phrases
        self._conjunctions = conjunctions
        self._substrings = tuple(substrings)

    def find(self, texts: Iterable[str]) -> Counter[str]:
        """Concept counts over ``texts`` (each a title, keyword or free-text field)."""
        sentence_words: list[list[str]] = []
        unspaced: list[str] = []
        for text in texts:
            sentence_words.extend(raw_words(sentence) for sentence in sentences(text))
            if has_unspaced(text):
                unspaced.append(text)
        return self.find_words(sentence_words, unspaced)

    def find_words(
        self, sentence_words: Iterable[list[str]], unspaced_texts: Iterable[str] = ()
    ) -> Counter[str]:
        """Concept counts from texts already split into sentences of raw words, plus the
        texts in unspaced scripts (matched by substring)."""
        found: Counter[str] = Counter()
        for words in sentence_words:
            self._scan(plain_stems_of(words), found)
        if self._substrings:
            for text in unspaced_texts:
                folded = fold(text)
                for needle, concept in self._substrings:
                    if needle in folded:
                        found[concept] += 1
        return found

    def _scan(self, toks: list[str], found: Counter[str]) -> None:
        hit: set[str] = set()
        n = len(toks)
        for i, tok in enumerate(toks):
            for rest, concept in self._phrases.get(tok, ()):
                if tuple(toks[i + 1 : i + 1 + len(rest)]) == rest and n >= i + 1 + len(rest):
                    found[concept] += 1
                    hit.add(concept)
        present = set(toks)
        for tok in present:
            for conj in self._conjunctions.get(tok, ()):
                if conj.concept not in hit and conj.words <= present:
                    found[conj.concept] += 1
                    hit.add(conj.concept)


def label(concept: str) -> str:
    """A concept id as people read it: ``aqua_water_quality`` -> ``aqua water quality``."""
    return concept.replace("_", " ")


DEFAULT_CONCEPTS: dict[str, str] = {**AGRI_CONCEPTS, **TECH_CONCEPTS}


@lru_cache(maxsize=1)
def default_lexicon() -> ConceptLexicon:
    """The built-in lexicon, compiled once per process on first use."""
    return ConceptLexicon(DEFAULT_CONCEPTS)
