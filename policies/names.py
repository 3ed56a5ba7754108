"""Which fields are organisation or person names, and the anonymous words that replace them.

The centers' agreements say no partner's name, logo or emblem is published without its
prior written consent (DESIGN 1, 7). A policy may name a name field; the name itself then
still leaves only when the listing's ``rights.name_logo_consent`` is true. Otherwise the
view carries a descriptor built from what the listing says about the organisation's type
and the owner's country, "a university in Vietnam", as technology-transfer networks do.

Contact details (``contact``, ``contact.person``...) are not in this table: they leave
only where a rule names them, and a rule that names them means to share them.

Names also sit inside free text: every expert's title starts with the expert's name, and
organisation titles carry the organisation's name (see ../shared/data). So a withheld
name is also replaced, as ``[a university in Vietnam]``, wherever it occurs in the
view's ``title``, ``summary`` and ``need`` (ignoring accents: "Nguyen Thi Lan" matches
"Nguyễn Thị Lan"). A title translation in which the name could not be found while it was
found in another language is dropped, since it likely spells the name in another script.
Abbreviations and transliterations are beyond this; see ``redact``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Mapping
from functools import lru_cache
from typing import Any

from protocol.countries import COUNTRY_NAMES

ORG_TYPE_WORDS: dict[str, str] = {
    "university": "a university",
    "research_institute": "a research institute",
    "enterprise": "an enterprise",
    "government": "a government body",
}
ANY_ORG = "an organisation"

# Kinds of name: "org" = organization.name (type from organization.type), "self" = the
# organisation listing's own name (type from ``type``), "affiliation" = an expert's
# organisation (type unknown), "person" = an expert's name, "party" = an agreement party
# (country from the party's node id).
NAME_FIELDS: dict[str, dict[str, str]] = {
    "tech_offer": {"organization.name": "org"},
    "tech_request": {"organization.name": "org"},
    "event": {"organization.name": "org"},
    "expert": {"name": "person", "affiliation": "affiliation"},
    "organization": {"name": "self"},
    "agreement": {"parties.name": "party"},
}
"""category -> field path -> kind of name. These fields need consent as well as a rule."""

ORG_NAME_FIELDS: dict[str, frozenset[str]] = {
    category: frozenset(path for path, kind in paths.items() if kind != "person")
    for category, paths in NAME_FIELDS.items()
}
"""category -> the paths that name an organisation; naming one of them (or its parent,
such as ``organization``) in a rule lets consented ``rights.ip_owner`` names through."""


def in_country(code: Any) -> str:
    """`` in Vietnam`` for a known country code, else the empty string."""
    name = COUNTRY_NAMES.get(code) if isinstance(code, str) else None
    return f" in {name}" if name else ""


def org_words(org_type: Any, country: Any) -> str:
    """Words for an organisation of a type in a country: "a university in Vietnam",
    or "an organisation in Vietnam" when the type is unknown."""
    if isinstance(org_type, str) and isinstance(country, str):
        return _org_words(org_type, country)
    word = ORG_TYPE_WORDS.get(org_type, ANY_ORG) if isinstance(org_type, str) else ANY_ORG
    return word + in_country(country)


@lru_cache(maxsize=1024)
def _org_words(org_type: str, country: str) -> str:
    return ORG_TYPE_WORDS.get(org_type, ANY_ORG) + in_country(country)


def party_words(party: Any) -> str:
    """An agreement party: national nodes are named by their lower-case ISO country code
    (``kh`` -> Cambodia), so the party's node gives its country when it is one of those."""
    node = party.get("node") if isinstance(party, dict) else None
    return ANY_ORG + (in_country(node.upper()) if isinstance(node, str) else "")


def descriptor(kind: str, listing: Mapping[str, Any], item: Any = None) -> str:
    """The anonymous words for a name of ``kind`` in ``listing`` (``item``: the party)."""
    country = listing.get("country")
    if kind == "org":
        org = listing.get("organization")
        return org_words(org.get("type") if isinstance(org, dict) else None, country)
    if kind == "self":
        return org_words(listing.get("type"), country)
    if kind == "person":
        return "an expert" + in_country(country)
    if kind == "party":
        return party_words(item)
    return ANY_ORG + in_country(country)


def own_names(listing: Mapping[str, Any]) -> dict[str, str]:
    """Organisation names the listing itself carries -> their descriptors."""
    category = listing.get("category")
    out: dict[str, str] = {}
    if category == "agreement":
        for party in listing.get("parties") or ():
            if isinstance(party, dict) and isinstance(party.get("name"), str):
                out.setdefault(party["name"], party_words(party))
        return out
    if category == "expert":
        value, kind = listing.get("affiliation"), "affiliation"
    elif category == "organization":
        value, kind = listing.get("name"), "self"
    else:
        org = listing.get("organization")
        value, kind = (org.get("name") if isinstance(org, dict) else None), "org"
    if isinstance(value, str):
        out[value] = descriptor(kind, listing)
    return out


def owner_words(listing: Mapping[str, Any], owners: Collection[Any]) -> list[str]:
    """``rights.ip_owner`` without names: each owner the listing describes gets its
    descriptor, any other (a co-owner) "an organisation"; joint ownership stays visible."""
    known = own_names(listing)
    return [known.get(owner, ANY_ORG) if isinstance(owner, str) else ANY_ORG for owner in owners]


FREE_TEXT = ("title", "summary", "need")
"""View fields searched for withheld names (``title`` is language -> text)."""


def _fold_char(char: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))


@lru_cache(maxsize=8192)
def fold(text: str) -> str:
    """``text`` without accents (NFKD, combining marks dropped), for matching names."""
    return "".join(_fold_char(char) for char in text)


def _find_folded(text: str, key: str) -> list[tuple[int, int]]:
    """Spans of ``text`` whose accent-folded form is ``key``."""
    folded: list[str] = []
    origin: list[int] = []
    for i, char in enumerate(text):
        for piece in _fold_char(char):
            folded.append(piece)
            origin.append(i)
    haystack = "".join(folded)
    spans: list[tuple[int, int]] = []
    start = haystack.find(key)
    while start >= 0 and key:
        spans.append((origin[start], origin[start + len(key) - 1] + 1))
        start = haystack.find(key, start + len(key))
    return spans


def _longest_first(withheld: Mapping[str, str]) -> list[tuple[str, str]]:
    pairs = [(name, "[" + words + "]") for name, words in withheld.items()]
    if len(pairs) > 1:
        pairs.sort(key=_longest)
    return pairs


def _longest(pair: tuple[str, str]) -> tuple[int, str]:
    return -len(pair[0]), pair[0]


def redact(text: str, withheld: Mapping[str, str]) -> tuple[str, bool]:
    """``text`` with each withheld name (longest first) replaced by ``[descriptor]``;
    the flag says whether anything was replaced. Exact up to accents."""
    return _redact(text, _longest_first(withheld))


def _redact(text: str, names: list[tuple[str, str]]) -> tuple[str, bool]:
    changed = False
    for name, words in names:
        if name in text:
            text = text.replace(name, words)
            changed = True
        key = fold(name)
        if text.isascii():
            if key != name and key in text:  # an accented name, written without accents
                text = text.replace(key, words)
                changed = True
            continue
        if key.isascii():
            # Cheap filter: dropping characters only joins runs, so a match in the folded
            # text is also a match in this ASCII-only rendering of it.
            rough = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
            if key not in rough:
                continue
        spans = _find_folded(text, key)
        for start, end in reversed(spans):
            text = text[:start] + words + text[end:]
        changed = changed or bool(spans)
    return text, changed


def redact_fields(fields: dict[str, Any], withheld: Mapping[str, str]) -> None:
    """Replace withheld names in the free-text fields of a view, in place."""
    names = _longest_first(withheld)
    for key in FREE_TEXT:
        value = fields.get(key)
        if isinstance(value, str):
            fields[key] = _redact(value, names)[0]
        elif isinstance(value, dict):
            found: dict[str, bool] = {}
            for lang, text in value.items():
                if isinstance(text, str):
                    value[lang], found[lang] = _redact(text, names)
            if any(found.values()):
                for lang, hit in found.items():
                    if not hit and lang != "en":
                        del value[lang]


def withheld_names(
    listing: Mapping[str, Any], paths: Collection[str], owners: Mapping[str, str]
) -> dict[str, str]:
    """Real names the view must not carry -> their descriptors: the values of the name
    ``paths`` of the listing's category, and ``owners`` (hidden ip_owner names)."""
    kinds = NAME_FIELDS.get(str(listing.get("category")), {})
    out: dict[str, str] = {}
    for path in paths:
        kind = kinds[path]
        if kind == "party":
            for party in listing.get("parties") or ():
                if isinstance(party, dict) and isinstance(party.get("name"), str):
                    out[party["name"]] = party_words(party)
            continue
        if path == "organization.name":
            org = listing.get("organization")
            value = org.get("name") if isinstance(org, dict) else None
        else:
            value = listing.get(path)
        if isinstance(value, str) and value:
            out[value] = descriptor(kind, listing)
    for owner, words in owners.items():
        if owner:
            out.setdefault(owner, words)
    return out
