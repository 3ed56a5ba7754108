"""The sharing policy as plain, immutable values (DESIGN 7).

A policy is what an operator writes: named groups of node ids and an ordered list of
rules, each saying which listings of one category (by visibility) and which of their
fields go to one audience. Parsing and validation live in ``policies.parse``; turning a
policy into fast per-audience lookups lives in ``policies.compiled``. This module only
holds the shapes both share, so that neither depends on the other's details.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STAR = "*"
"""The audience that means every counterpart (the least specific rule)."""

NODE_ID_RE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
"""Node ids (protocol ``NodeId``); group names follow the same pattern."""

RULE_KEYS = ("audience", "category", "visibility", "fields", "relay")
RELAY_KEYS = ("to", "fields")
TOP_KEYS = ("groups", "rules")


@dataclass(frozen=True, slots=True)
class Relay:
    """What the hub may pass on, in match notices, of a view it received under a rule."""

    to: tuple[str, ...]
    fields: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"to": list(self.to), "fields": list(self.fields)}


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: listings of ``category`` whose visibility is in ``visibility`` go to
    ``audience`` (a node id, a group name or ``*``) with only ``fields``."""

    audience: str
    category: str
    visibility: tuple[str, ...]
    fields: tuple[str, ...]
    relay: Relay | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "audience": self.audience,
            "category": self.category,
            "visibility": list(self.visibility),
            "fields": list(self.fields),
        }
        if self.relay is not None:
            out["relay"] = self.relay.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class Policy:
    """Groups (name -> node ids) and rules in file order. Rule numbers are 1-based."""

    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()

    def groups_of(self, node_id: str) -> frozenset[str]:
        """Names of the policy's groups that list ``node_id``."""
        return frozenset(name for name, members in self.groups.items() if node_id in members)

    def node_ids(self) -> frozenset[str]:
        """Every node id named in some group."""
        return frozenset(node for members in self.groups.values() for node in members)

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": {name: list(members) for name, members in self.groups.items()},
            "rules": [rule.to_dict() for rule in self.rules],
        }


@dataclass(frozen=True, slots=True)
class Audience:
    """A counterpart a view is built for.

    ``groups`` are all the groups it belongs to: the policy's groups that list it plus any
    from elsewhere (the hub's member directory); ``member`` is False for a bilateral peer
    that is not a member of the network (it never sees ``network`` listings).
    """

    node_id: str
    groups: frozenset[str] = frozenset()
    member: bool = True


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One problem found in a policy document.

    ``rule`` is the 1-based rule number (None for problems outside ``rules``), ``key``
    the offending key (``fields``, ``relay.to``, ``groups.mou``...) or None.
    """

    rule: int | None
    key: str | None
    message: str
    audience: str | None = None
    category: str | None = None

    def __str__(self) -> str:
        parts: list[str] = []
        if self.rule is not None:
            context = []
            if self.audience is not None:
                context.append(f"audience {self.audience}")
            if self.category is not None:
                context.append(f"category {self.category}")
            label = f"rule {self.rule}"
            parts.append(f"{label} ({', '.join(context)})" if context else label)
        if self.key is not None:
            parts.append(f"key '{self.key}'")
        parts.append(self.message)
        return ": ".join(parts)


class PolicyError(ValueError):
    """A policy document that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))
