"""A policy turned into lookups and field programs, so that evaluation is cheap.

A node builds one view per listing per counterpart on every change and, after a policy
change, for the whole catalogue (DESIGN 11: up to a million summaries at the hub). So
the per-view work must be a couple of dict lookups and a walk over a precomputed list of
field operations; everything that depends only on the policy is done here, once.

Rule precedence (DESIGN 7 "the most specific audience wins"): a rule naming the node id
beats a rule naming one of its groups, which beats ``*``. When the node is in several
groups that each have a rule for the category, the rule that comes first in the file wins.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from protocol.listing import CATEGORIES

from .model import STAR, Audience, Policy, Rule
from .names import FREE_TEXT, NAME_FIELDS, ORG_NAME_FIELDS, descriptor

COPY, GATED, NESTED, FLAT = 0, 1, 2, 3
"""Field operations: copy the value; a name needing consent; pick keys of an object (or of
each object of a list, for ``parties``); copy a list or object of plain values."""

FLAT_FIELDS = frozenset(
    {"title", "keywords", "ipc", "isic", "partnership", "target_countries", "fields"}
    | {"languages", "sectors", "related_listings"}
)
"""Fields that by the protocol schema hold plain values only (strings, or language ->
string for ``title``), so a shallow copy is a full copy."""

# (key, code, arg): arg is the kind of name for GATED; for NESTED a pair
# (keys to keep or None for all, {key: kind of name} for the names among them).
FieldOp = tuple[str, int, Any]
MatchKind = Literal["node", "group", "*"]
_CONTAINERS = (list, dict)


def copy_json(value: Any) -> Any:
    """A copy of a JSON value, so a view never shares a list or object with the listing."""
    kind = type(value)
    if kind is list:
        return [copy_json(x) if type(x) in _CONTAINERS else x for x in value]
    if kind is dict:
        return {k: copy_json(x) if type(x) in _CONTAINERS else x for k, x in value.items()}
    return value


def compile_fields(fields: tuple[str, ...], category: str | None) -> tuple[FieldOp, ...]:
    """Field paths -> operations, in the order the paths are first named.

    ``category`` selects which paths are names (``policies.names.NAME_FIELDS``); None
    compiles a plain projection (used for relays, whose input is already a view).
    A whole object (``organization``) wins over any of its parts (``organization.type``).
    """
    names = NAME_FIELDS.get(category, {}) if category is not None else {}
    tree: dict[str, list[str] | None] = {}
    for path in fields:
        top, _, sub = path.partition(".")
        if not sub:
            tree[top] = None
        elif top not in tree:
            tree[top] = [sub]
        else:
            keep = tree[top]
            if keep is not None and sub not in keep:
                keep.append(sub)
    ops: list[FieldOp] = []
    for top, subs in tree.items():
        if top in names:
            ops.append((top, GATED, names[top]))
            continue
        gated = {
            path.partition(".")[2]: kind
            for path, kind in names.items()
            if path.startswith(top + ".")
        }
        if subs is None and not gated:
            ops.append((top, FLAT if top in FLAT_FIELDS else COPY, None))
        else:
            ops.append((top, NESTED, (None if subs is None else tuple(subs), gated)))
    return tuple(ops)


def _pick(
    obj: Mapping[str, Any],
    keys: tuple[str, ...] | None,
    gated: Mapping[str, str],
    consent: bool,
    listing: Mapping[str, Any],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in obj if keys is None else keys:
        value = obj.get(key)
        if value is None:
            continue
        kind = gated.get(key)
        if kind is None or consent:
            out[key] = copy_json(value)
        else:
            out[key] = descriptor(kind, listing, obj)
    return out


def project(
    ops: tuple[FieldOp, ...], source: Mapping[str, Any], consent: bool, listing: Mapping[str, Any]
) -> dict[str, Any]:
    """Apply field operations to ``source``; absent (or null) values stay absent."""
    out: dict[str, Any] = {}
    for key, code, arg in ops:
        value = source.get(key)
        if value is None:
            continue
        if code == FLAT:
            out[key] = value.copy() if type(value) in _CONTAINERS else value
        elif code == COPY:
            out[key] = copy_json(value) if type(value) in _CONTAINERS else value
        elif code == GATED:
            out[key] = copy_json(value) if consent else descriptor(arg, listing)
        elif type(value) is dict:
            picked = _pick(value, arg[0], arg[1], consent, listing)
            if picked:
                out[key] = picked
        elif type(value) is list:
            items = [
                _pick(item, arg[0], arg[1], consent, listing)
                for item in value
                if type(item) is dict
            ]
            if any(items):
                out[key] = items
    return out


def covers(fields: Collection[str], path: str) -> bool:
    """True if ``path`` or an ancestor of it is among ``fields``."""
    parts = path.split(".")
    return any(".".join(parts[:i]) in fields for i in range(1, len(parts) + 1))


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    """One rule ready to apply: its number, visibilities and field program."""

    index: int
    rule: Rule
    visibility: frozenset[str]
    ops: tuple[FieldOp, ...]
    reveals_owners: bool
    """The rule names an organisation-name field, so consented ip_owner names may leave."""
    shows_person: bool
    """The rule names the expert's ``name`` (attribution may then carry it, with consent)."""
    shared_reason: str
    all_names: tuple[str, ...]
    """Name paths of the category: all withheld when the listing has no consent."""
    unnamed_names: tuple[str, ...]
    """Name paths the rule does not name: withheld even with consent."""
    free_text: bool
    """The rule shares a free-text field (title, summary, need) that may contain names."""


@dataclass(frozen=True, slots=True)
class Match:
    """Which rule applies to an audience for a category, and how it was found."""

    rule: CompiledRule
    kind: MatchKind
    key: str
    """The node id, group name or ``*`` that matched."""
    passed_over: tuple[CompiledRule, ...] = ()
    """Less specific or later rules that also name the audience (for explain)."""


class CompiledPolicy:
    """A policy with, per category, its rules keyed by audience name, and field programs."""

    __slots__ = ("by_name", "policy", "rules", "star")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        rules: list[CompiledRule] = []
        self.by_name: dict[tuple[str, str], CompiledRule] = {}
        self.star: dict[str, CompiledRule] = {}
        for index, rule in enumerate(policy.rules, start=1):
            names = frozenset(rule.fields)
            crule = CompiledRule(
                index=index,
                rule=rule,
                visibility=frozenset(rule.visibility),
                ops=compile_fields(rule.fields, rule.category),
                reveals_owners=any(
                    covers(names, p) for p in ORG_NAME_FIELDS.get(rule.category, ())
                ),
                shows_person=rule.category == "expert" and "name" in names,
                shared_reason=f"shared under rule {index} (audience {rule.audience})",
                all_names=tuple(NAME_FIELDS.get(rule.category, ())),
                unnamed_names=tuple(
                    p for p in NAME_FIELDS.get(rule.category, ()) if not covers(names, p)
                ),
                free_text=any(name in names for name in FREE_TEXT),
            )
            rules.append(crule)
            if rule.audience == STAR:
                self.star.setdefault(rule.category, crule)
            else:
                self.by_name.setdefault((rule.audience, rule.category), crule)
        self.rules = tuple(rules)

    def lookup(self, audience: Audience, category: str) -> CompiledRule | None:
        """The rule for ``audience`` and ``category``: node id, else the first group rule in
        file order, else ``*``, else None (deny)."""
        by_name = self.by_name
        found = by_name.get((audience.node_id, category))
        if found is not None:
            return found
        for group in audience.groups:
            rule = by_name.get((group, category))
            if rule is not None and (found is None or rule.index < found.index):
                found = rule
        if found is not None:
            return found
        return self.star.get(category)

    def match(self, audience: Audience, category: str) -> Match | None:
        """Like ``lookup``, saying how the rule was found and which others it beat."""
        candidates: list[tuple[int, int, MatchKind, str, CompiledRule]] = []
        node_rule = self.by_name.get((audience.node_id, category))
        if node_rule is not None:
            candidates.append((0, node_rule.index, "node", audience.node_id, node_rule))
        for group in sorted(audience.groups):
            rule = self.by_name.get((group, category))
            if rule is not None and rule is not node_rule:
                candidates.append((1, rule.index, "group", group, rule))
        star_rule = self.star.get(category)
        if star_rule is not None:
            candidates.append((2, star_rule.index, "*", STAR, star_rule))
        if not candidates:
            return None
        candidates.sort(key=lambda c: (c[0], c[1]))
        _, _, kind, key, rule = candidates[0]
        return Match(rule, kind, key, tuple(c[4] for c in candidates[1:]))

    def categories(self) -> tuple[str, ...]:
        """Categories that have at least one rule, in protocol order."""
        named = {rule.rule.category for rule in self.rules}
        return tuple(c for c in CATEGORIES if c in named)


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Precompute, per audience name and category, the rule and its field program."""
    return CompiledPolicy(policy)
