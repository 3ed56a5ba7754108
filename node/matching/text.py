"""Text normalisation shared by every lexical signal of the matcher.

Requests and offers are written by different people in different countries: British and
American spelling, plurals, hyphenated compounds, Vietnamese diacritics, and titles in
scripts without spaces (Chinese, Thai, Lao, Khmer, Burmese). One tokenizer used for the
listings, the concept lexicon and the BM25 baseline keeps all of them comparable: Latin
words are folded to ASCII and lightly stemmed, unspaced scripts become character bigrams,
and ``char_ngrams`` gives the sub-word view that survives morphology and transliteration.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache

_LETTER = r"(?:[^\W_]|[\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff])"
_WORD = re.compile(rf"{_LETTER}+(?:['-]{_LETTER}+)*")
_SENTENCE = re.compile(r"(?<=[.;!?])\s+|\n+")
_UNSPACED = re.compile(
    r"[\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf"
    r"\u4e00-\u9fff\uac00-\ud7af]"
)
_SPELLING = (
    ("isation", "ization"),
    ("ising", "izing"),
    ("ised", "ized"),
    ("iser", "izer"),
    ("yse", "yze"),
    ("ysing", "yzing"),
    ("ysed", "yzed"),
    ("ouring", "oring"),
    ("oured", "ored"),
    ("our", "or"),
    ("ours", "ors"),
    ("tre", "ter"),
    ("tres", "ters"),
    ("ogue", "og"),
)
_SPELLING_EXCEPTIONS = frozenset(
    {"four", "hour", "pour", "sour", "tour", "your", "flour", "our", "ours", "hours", "tours"}
)
_VOWELS = frozenset("aeiouy")

STOPWORDS = frozenset(
    """a about above across after again against all almost also although always am among an and
    any are around as at be because been before being below between both but by can cannot
    could did do does doing done down during each either else enough etc even ever every
    few for from further get gets getting give given gives had has have having he her here
    hers him his how however i if in into is it its itself just less like made make makes
    making many may me more most much must my near need needs needed new no nor not now of
    off often on once one only onto or other our ours out over own per please rather same
    seek seeks seeking sought she should since so some such than that the their them then
    there these they this those though through thus to too under until up upon us use used
    uses using very via want wanted wants was we well were what when where whether which
    while who whom whose why will with within without would yet you your ideally possibly
    preferably including include includes able already still around approx eg ie""".split()
)


def fold(text: str) -> str:
    """Lower-case, NFKC, and strip diacritics from Latin letters only.

    Vietnamese ``nước`` becomes ``nuoc``; Thai, Lao, Khmer and Burmese keep their vowel
    signs, which are combining marks that carry meaning.
    """
    text = unicodedata.normalize("NFKC", text).lower().replace("đ", "d").replace("’", "'")
    if text.isascii():
        return text
    out: list[str] = []
    for char in unicodedata.normalize("NFD", text):
        if unicodedata.combining(char) and out and out[-1].isascii():
            continue
        out.append(char)
    return unicodedata.normalize("NFC", "".join(out))


_IRREGULAR = {
    "died": "die",
    "dying": "die",
    "dead": "die",
    "death": "die",
    "deaths": "die",
    "dried": "dry",
    "dries": "dry",
    "drier": "dryer",
    "driers": "dryer",
    "broken": "break",
    "breakage": "break",
    "brokens": "break",
    "grown": "grow",
    "growth": "grow",
    "men": "man",
    "women": "woman",
    "children": "child",
    "fish": "fish",
    "fishes": "fish",
    "leaves": "leaf",
    "knives": "knife",
}


def _respell(word: str) -> str:
    if word in _SPELLING_EXCEPTIONS or len(word) < 5:
        return word
    for british, american in _SPELLING:
        if word.endswith(british):
            return word[: -len(british)] + american
    return word


# Words stemmed are remembered up to STEM_CACHE of them, if no longer than CACHED_WORD
# characters: a word is any run of letters, and a hostile sender's listings can hold
# thousands of distinct runs of up to 2,000 letters; remembered whatever their length, a
# full cache held ~1 GB of them in the matching worker. No real word is that long.
STEM_CACHE = 262_144
CACHED_WORD = 40


def stem(word: str) -> str:
    """A light English stemmer: spelling variants, plurals, -ing/-ed, a few derivations.

    Deliberately conservative: it only has to map a word and its common variants to the
    same key, on both sides of a match; char n-grams cover what it misses.
    """
    return _stem_cached(word) if len(word) <= CACHED_WORD else _stem(word)


def _stem(word: str) -> str:
    if not word.isascii() or len(word) <= 3 or not word.isalpha():
        return word
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    word = _respell(word)
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "shes", "ches", "xes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is", "ous")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            if not _VOWELS.intersection(base):
                break
            if len(base) > 3 and base[-1] == base[-2] and base[-1] not in "lsz":
                base = base[:-1]
            word = base
            break
    for suffix, repl in (("ization", "iz"), ("ation", "at"), ("ness", ""), ("ment", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            word = word[: -len(suffix)] + repl
            break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    if word.endswith("y") and len(word) > 4:
        word = word[:-1] + "i"
    return word


_stem_cached = lru_cache(maxsize=STEM_CACHE)(_stem)


def _unspaced_bigrams(token: str) -> Iterator[str]:
    if len(token) <= 2:
        yield token
        return
    for i in range(len(token) - 1):
        yield token[i : i + 2]


def raw_words(text: str) -> list[str]:
    """Folded words (not stemmed, stopwords kept); hyphenated words split and joined."""
    out: list[str] = []
    for token in _WORD.findall(fold(text)):
        if "-" in token or "'" in token:
            parts = [p for p in re.split(r"['-]", token) if p]
            out.extend(parts)
            if "-" in token and len(parts) == 2 and all(p.isalpha() for p in parts):
                out.append("".join(parts))
        else:
            out.append(token)
    return out


def index_terms(words: Iterable[str]) -> list[str]:
    """Index terms of raw words: stemmed Latin words without stopwords or bare numbers, and
    character bigrams of unspaced scripts."""
    out: list[str] = []
    for word in words:
        if word.isascii():
            if word in STOPWORDS or word.isdigit() or len(word) == 1:
                continue
            out.append(stem(word))
        elif _UNSPACED.search(word):
            out.extend(_unspaced_bigrams(word))
        elif not word.isdigit():
            out.append(stem(word))
    return out


def tokens(text: str) -> list[str]:
    """Index terms of ``text`` (see ``index_terms``)."""
    return index_terms(raw_words(text))


def plain_stems_of(words: Iterable[str]) -> list[str]:
    """Stems of every Latin word, stopwords kept: what concept phrases are matched on, so
    that "no grid" or "used batteries" keep the word that carries their meaning."""
    return [
        stem(word)
        for word in words
        if not word.isdigit() and (word.isascii() or not _UNSPACED.search(word))
    ]


def plain_stems(text: str) -> list[str]:
    return plain_stems_of(raw_words(text))


def sentences(text: str) -> list[str]:
    """Rough sentence split, so that co-occurrence triggers stay within one statement."""
    return [part for part in _SENTENCE.split(text) if part.strip()]


def char_ngrams(words: Iterable[str], n: int = 4) -> Iterator[str]:
    """Boundary-marked character n-grams of the Latin words (stopwords and numbers left out).

    ``deproteinised`` and ``protein`` share ``prot``, ``rote``, ``otei``...
    """
    for word in words:
        if word in STOPWORDS or word.isdigit() or len(word) < 3 or _UNSPACED.search(word):
            continue
        padded = f"<{word}>"
        if len(padded) <= n:
            yield padded
            continue
        for i in range(len(padded) - n + 1):
            yield padded[i : i + n]


def has_unspaced(text: str) -> bool:
    return _UNSPACED.search(text) is not None
