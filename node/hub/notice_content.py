"""What a match notice may tell its recipient (DESIGN 3.2, 9; docs/protocol-notes.md,
"What a match notice may say").

A notice to member X about a counterpart listing C names C only if X may know of C:

- C's owner gives X a view of C (the hub can tell only for its own listings: it does not
  hold a member's rules for other audiences);
- C's owner gives the public (``*``) a view of C, which anyone reads in public search;
- C's owner's relay rule names X (the hub may pass on the relay's fields).

Otherwise no notice about C goes to X at all: not even an anonymous one, since a notice
without identifying content still tells X that some listing of that owner exists and
matched (DESIGN 3.2: a counterpart learns nothing of a listing it may not see).

Everything a notice says of C comes from those fields (the "knowable" fields): the
notice's ``fields`` are the relay's only (DESIGN 9); a shared term is kept only if each of
its words occurs in the knowable fields; a shared code only if it is one of their codes
or a taxonomy ancestor of one (IPC class and section, ISIC division and section). This is
conservative by design: a term the matcher found in a field X may not see is dropped even
when X could guess it. The score's components are told only when X may know every field
of C that each reads (``COMPONENT_INPUTS``): a member's 157 probing requests read C's
hidden sector, partnership, IPC subclass and TRL from them. When one is withheld, the
score is told to one decimal only. Pure: no I/O, no clock; the property tests drive it
directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from node.matching.codes import ISIC_SECTIONS, isic_section_of_division
from node.services.views import public_view
from policies.compiled import CompiledPolicy
from policies.evaluate import evaluate, relay_view
from policies.model import Audience, Relay
from protocol import PROTOCOL_VERSION
from protocol.hub_objects import MatchNotice, build, counterpart_category
from protocol.listing import shareable_fields

_TEXT_FIELDS = ("title", "keywords", "fields", "need", "summary", "job_title")
COMPONENT_INPUTS: dict[str, tuple[str, ...]] = {
    "text": _TEXT_FIELDS,
    "concepts": _TEXT_FIELDS,
    "ngrams": _TEXT_FIELDS,
    "semantic": _TEXT_FIELDS,
    "ipc": ("ipc",),
    "inferred_ipc": ("ipc",),
    "isic": ("isic",),
    "inferred_isic": ("isic",),
    "sector": ("sector", "sectors"),
    "inferred_sector": ("sector", "sectors"),
    "trl": ("trl", "trl_min"),
    "partnership": ("partnership",),
    "target": ("target_countries",),
}
"""The counterpart's fields each score component reads; a component not named here is
never told."""
_WORD = re.compile(r"\w+", re.UNICODE)
_UNSPACED = re.compile(
    r"^[\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf"
    r"\u4e00-\u9fff\uac00-\ud7af]+$"
)
_IPC = re.compile(r"^([A-H])(\d{2})?([A-Z])?")
CODE_WORDS = frozenset({"ipc", "isic", "section", "class", "subclass", "division", "group"})
"""Words of a code explanation that name the taxonomy or the level, not the listing."""


@dataclass(frozen=True)
class Knowable:
    """What recipient X may know of one counterpart listing.

    ``relayed``: the fields the owner's relay rule lets the hub pass on to X, or None when
    the rule does not name X (or there is none); ``views``: the ``fields`` of the other
    views X may hold (the owner's view for X, the owner's public view).
    """

    relayed: Mapping[str, Any] | None = None
    views: tuple[Mapping[str, Any], ...] = ()

    @property
    def named(self) -> bool:
        """True if X may be told of the listing at all."""
        return self.relayed is not None or bool(self.views)

    def sources(self) -> list[Mapping[str, Any]]:
        return [*self.views, *([self.relayed] if self.relayed is not None else [])]


def knowable_part(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a held summary that ``held_knowable`` reads (its public view, its
    relay rule, and the fields only when a relay may pass some on): what a re-match
    keeps of the summaries its notices are about."""
    listing = summary["listing"]
    relay = summary.get("policy", {}).get("relay")
    part: dict[str, Any] = {"listing": {"public_view": listing.get("public_view")}}
    if relay:
        part["listing"]["fields"] = listing["fields"]
        part["policy"] = {"relay": relay}
    return part


def held_knowable(summary: Mapping[str, Any], recipient: Audience) -> Knowable:
    """What ``recipient`` may know of a member's listing, from the summary the hub holds:
    its public view and its relay. The hub does not hold the owner's rules for other
    audiences, so the owner's own view for the recipient cannot be counted here."""
    listing = summary["listing"]
    public = listing.get("public_view")
    views: tuple[Mapping[str, Any], ...] = (
        (public["fields"],) if isinstance(public, Mapping) else ()
    )
    relay = summary.get("policy", {}).get("relay")
    relayed = None
    if relay:
        rule = Relay(tuple(relay.get("to", ())), tuple(relay.get("fields", ())))
        relayed = relay_view(listing["fields"], rule, recipient)
    return Knowable(relayed, views)


def own_knowable(
    record: Mapping[str, Any],
    recipient: Audience,
    me: Audience,
    compiled: CompiledPolicy,
    now_ms: int,
) -> Knowable:
    """What ``recipient`` may know of one of the hub's own listings (``record``): the
    hub's view for it and for the public, and what the hub's rule for itself (``me``)
    relays, exactly as a member's listing would be judged."""
    views = tuple(
        view["fields"]
        for view in (
            evaluate(record, recipient, compiled, now_ms).view,
            public_view(record, compiled, now_ms),
        )
        if view is not None
    )
    mine = evaluate(record, me, compiled, now_ms)
    relayed = None
    if mine.view is not None and mine.rule_index is not None:
        rule = compiled.policy.rules[mine.rule_index - 1]
        relayed = relay_view(mine.view["fields"], rule.relay, recipient)
    return Knowable(relayed, views)


def words(value: Any) -> set[str]:
    """The case-folded words of every string and number in a JSON value (not its keys)."""
    out: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.update(t.casefold() for t in _WORD.findall(item))
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int | float):
            out.update(_WORD.findall(str(item)))
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def ipc_known(symbols: Iterable[str]) -> set[str]:
    """Case-folded IPC words a reader knows from ``symbols``: each symbol's words and the
    symbol's subclass, class and section (``"A01G 9/14"`` -> a01g, 9, 14, a01, a)."""
    out: set[str] = set()
    for symbol in symbols:
        out |= words(symbol)
        match = _IPC.match(symbol.strip().upper())
        if match is None:
            continue
        section, klass, letter = match.groups()
        out.add(section.casefold())
        if klass:
            out.add((section + klass).casefold())
            if letter:
                out.add((section + klass + letter).casefold())
    return out


def isic_known(codes: Iterable[str]) -> set[str]:
    """Case-folded ISIC words a reader knows from ``codes``: each code's words, its
    division (two digits) and the section letter of that division."""
    out: set[str] = set()
    for code in codes:
        out |= words(code)
        text = code.strip().upper()
        if len(text) == 1 and text in ISIC_SECTIONS:
            out.add(text.casefold())
        elif len(text) >= 2 and text[:2].isdigit():
            out.add(text[:2])
            section = isic_section_of_division(int(text[:2]))
            if section:
                out.add(ISIC_SECTIONS[section - 1].casefold())
    return out


@dataclass(frozen=True)
class Vocabulary:
    """The words and codes a reader may know of one counterpart."""

    text: frozenset[str]
    ipc: frozenset[str]
    isic: frozenset[str]

    @classmethod
    def of(cls, knowable: Knowable) -> Vocabulary:
        sources = knowable.sources()
        return cls(
            text=frozenset(set().union(*(words(s) for s in sources)) if sources else set()),
            ipc=frozenset(ipc_known(c for s in sources for c in _strings(s.get("ipc")))),
            isic=frozenset(isic_known(c for s in sources for c in _strings(s.get("isic")))),
        )

    def has_word(self, token: str) -> bool:
        if token in self.text:
            return True
        # Scripts written without spaces (Chinese, Thai, Lao, Khmer, Burmese...): a term
        # is a piece of a longer run, so look for it inside the known runs.
        return bool(_UNSPACED.match(token)) and any(token in known for known in self.text)

    def term(self, term: str) -> bool:
        """True if every word of ``term`` is one the reader may know."""
        tokens = [t.casefold() for t in _WORD.findall(term)]
        return bool(tokens) and all(self.has_word(t) for t in tokens)

    def code(self, text: str) -> bool:
        """True if ``text`` (``"IPC A01G"``, ``"ISIC section A"``...) names only codes the
        reader may know, in the taxonomy the text names."""
        tokens = [t.casefold() for t in _WORD.findall(text)]
        system = tokens[0] if tokens else ""
        rest = [t for t in tokens if t not in CODE_WORDS]
        known = {"ipc": self.ipc, "isic": self.isic}.get(system)
        if known is None:
            return bool(rest) and all(t in self.ipc or t in self.isic for t in rest)
        return bool(rest) and all(t in known for t in rest)


def match_notice(
    *,
    issuer: str,
    now_ms: int,
    reader: str,
    own_id: str,
    role: str,
    counterpart: tuple[str, str],
    kind: str,
    where: str,
    score: float,
    components: Mapping[str, float],
    shared_terms: Sequence[str],
    shared_codes: Sequence[str],
    knowable: Knowable,
) -> dict[str, Any] | None:
    """The unsigned match notice for ``reader`` (checked against the protocol's
    ``MatchNotice``), or None when it may not be told of the counterpart at all. ``where``
    names the owner's country (the counterpart's descriptor)."""
    if not knowable.named:
        return None
    vocab = Vocabulary.of(knowable)
    told = told_components(components, counterpart_category(role, kind), knowable)
    exact = len(told) == len(components)
    return build(
        MatchNotice,
        type="match_notice",
        v=PROTOCOL_VERSION,
        issuer=issuer,
        ts=now_ms,
        audience=reader,
        own_listing={"id": own_id, "role": role},
        counterpart={
            "owner": counterpart[0],
            "listing_id": counterpart[1],
            "kind": kind,
            "descriptor": f"a listing held by the center of {where}",
            "fields": dict(knowable.relayed or {}),
        },
        score=round(float(score), 4 if exact else 1),
        explanation={
            "components": told,
            "shared_terms": [t for t in shared_terms if vocab.term(t)],
            "shared_codes": [c for c in shared_codes if vocab.code(c)],
        },
    )


def told_components(
    components: Mapping[str, float], category: str, knowable: Knowable
) -> dict[str, float]:
    """The components whose inputs, among the fields a listing of ``category`` has, are
    all fields the reader may know of the counterpart."""
    known = {name for source in knowable.sources() for name in source}
    has = _top_fields(category)
    return {
        name: round(float(value), 4)
        for name, value in components.items()
        if name in COMPONENT_INPUTS and has.intersection(COMPONENT_INPUTS[name]) <= known
    }


@cache
def _top_fields(category: str) -> frozenset[str]:
    """The fields a listing of ``category`` has (each notice asks: walked once)."""
    return frozenset(path.partition(".")[0] for path in shareable_fields(category))
