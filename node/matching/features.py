"""What the matcher extracts from one listing summary, once, when the summary arrives.

The hub holds each member's listing only as a policy-filtered view: ``fields`` carries
whatever the owner's rule allowed, so any field may be missing or, from a faulty peer,
of the wrong type. Extraction never fails on that; it records what is there. Everything
the scorer needs later (weighted terms, concepts, n-grams, codes, TRL, partnership and
target-country sets) is computed here, so scoring never re-reads text.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from node.matching.codes import encode
from node.matching.concepts import ConceptLexicon
from node.matching.text import char_ngrams, has_unspaced, index_terms, raw_words, sentences, stem
from protocol.listing import Partnership, Sector

KIND_OF_CATEGORY = {"tech_request": "request", "tech_offer": "offer", "expert": "expert"}
CANDIDATE_KINDS = ("offer", "expert")
# The wire model's enumerations, in their declared order (bit positions for the scorer).
PARTNERSHIPS: tuple[str, ...] = get_args(Partnership)
SECTORS: tuple[str, ...] = get_args(Sector)
# How much one occurrence counts, by field: titles and keywords say what a listing is about.
FIELD_WEIGHTS = {
    "title": 2.0,
    "keywords": 2.0,
    "fields": 2.0,
    "need": 1.5,
    "summary": 1.0,
    "job_title": 1.0,
}

Ref = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Features:
    """One listing as the matcher sees it. Term weights are sublinear tf (no idf yet)."""

    ref: Ref
    kind: str
    version: int
    expires: int | None
    title: str
    words: dict[str, float]
    concepts: dict[str, float]
    ngrams: dict[str, float]
    text: str
    ipc: tuple[int, ...] = ()
    isic: tuple[int, ...] = ()
    sectors: frozenset[str] = frozenset()
    trl: int | None = None
    trl_min: int | None = None
    partnership: frozenset[str] | None = None
    targets: frozenset[str] | None = None
    surface: dict[str, str] = field(default_factory=dict)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str) and v.strip()]
    return []


def _titles(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        english = value.get("en")
        others = [v for k, v in sorted(value.items()) if k != "en"]
        return _strings([english, *others])
    return _strings(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_INT64 = (-(2**63), 2**63 - 2)  # the matcher's columns are int64 (its largest: "never")


def _int64(value: Any) -> int | None:
    """``_int``, brought within the matcher's int64 columns (a sender may write any
    integer: 10**30 would not fit, and is "never" for an expiry anyway)."""
    number = _int(value)
    return None if number is None else min(max(number, _INT64[0]), _INT64[1])


def _set(value: Any, allowed: Iterable[str] | None = None) -> frozenset[str] | None:
    items = _strings(value)
    if not items:
        return None
    out = frozenset(items)
    if allowed is not None:
        out = out & frozenset(allowed)
    return out or None


def _sublinear(counts: Mapping[str, float]) -> dict[str, float]:
    return {t: (1.0 + math.log(c)) if c >= 1.0 else c for t, c in counts.items() if c > 0}


def field_texts(kind: str, fields: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """(field name, texts) for the fields that carry words, in a fixed order."""
    parts = [
        ("title", _titles(fields.get("title"))),
        ("keywords", _strings(fields.get("keywords"))),
        ("summary", _strings(fields.get("summary"))),
    ]
    if kind == "request":
        parts.append(("need", _strings(fields.get("need"))))
    if kind == "expert":
        parts.append(("fields", _strings(fields.get("fields"))))
        parts.append(("job_title", _strings(fields.get("job_title"))))
    return [(name, texts) for name, texts in parts if texts]


def listing_text(view: Mapping[str, Any]) -> str | None:
    """The ``text`` that ``extract`` gives the listing ``view`` (what an encoder reads),
    without the rest of its analysis; None for a category not matched."""
    kind = KIND_OF_CATEGORY.get(str(view.get("category")))
    if kind is None:
        return None
    raw_fields = view.get("fields")
    fields: Mapping[str, Any] = raw_fields if isinstance(raw_fields, Mapping) else {}
    return _joined(field_texts(kind, fields))


def _joined(parts: list[tuple[str, list[str]]]) -> str:
    """The text an encoder reads: the title in one language only (English where the
    listing gives it), then the other fields. A title's translations carry no meaning the
    first does not, only its languages: with them a multilingual model ranks a request
    written in Chinese above all offers whose titles have a Chinese translation, whatever
    they are about."""
    return "\n".join(
        text for name, texts in parts for text in (texts[:1] if name == "title" else texts)
    )


def extract(
    owner: str, view: Mapping[str, Any], lexicon: ConceptLexicon, *, ngrams: bool = True
) -> Features | None:
    """Features of the ``listing`` member of a summary, or None for a category not matched.
    ``ngrams``: whether to find its character n-grams (a matcher with a model holds none)."""
    kind = KIND_OF_CATEGORY.get(str(view.get("category")))
    listing_id = view.get("id")
    if kind is None or not isinstance(listing_id, str):
        return None
    raw_fields = view.get("fields")
    fields: Mapping[str, Any] = raw_fields if isinstance(raw_fields, Mapping) else {}
    parts = field_texts(kind, fields)
    words: dict[str, float] = {}
    grams: Counter[str] = Counter()
    surface: dict[str, str] = {}
    sentence_words: list[list[str]] = []
    unspaced: list[str] = []
    for name, texts in parts:
        weight = FIELD_WEIGHTS[name]
        for text in texts:
            split = [raw_words(sentence) for sentence in sentences(text)]
            sentence_words.extend(split)
            if has_unspaced(text):
                unspaced.append(text)
            flat = [word for sentence in split for word in sentence]
            for word in flat:
                if word.isascii():
                    surface.setdefault(stem(word), word)
            for term in index_terms(flat):
                words[term] = words.get(term, 0.0) + weight
            if ngrams and name in {"title", "keywords", "fields"}:
                grams.update(char_ngrams(flat))
    concepts = lexicon.find_words(sentence_words, unspaced)
    titles = _titles(fields.get("title"))
    expires = _int64(view.get("expires"))
    if expires is None:
        expires = _int64(fields.get("expires"))
    sectors = _set(fields.get("sector"), SECTORS) or _set(fields.get("sectors"), SECTORS)
    return Features(
        ref=(owner, listing_id),
        kind=kind,
        version=_int64(view.get("version")) or 0,
        expires=expires,
        title=titles[0] if titles else listing_id,
        words=_sublinear(words),
        concepts=_sublinear(concepts),
        ngrams=_sublinear(grams),
        text=_joined(parts),
        ipc=encode(_strings(fields.get("ipc")), "ipc"),
        isic=encode(_strings(fields.get("isic")), "isic"),
        sectors=sectors or frozenset(),
        trl=_int(fields.get("trl")),
        trl_min=_int(fields.get("trl_min")),
        partnership=_set(fields.get("partnership"), PARTNERSHIPS),
        targets=_set(fields.get("target_countries")),
        surface=surface,
    )
