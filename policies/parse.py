"""Reading, checking and writing policy documents (the YAML of DESIGN 7).

Operators edit policies by hand, so a mistake must never be silently ignored: a typo in
a field name would otherwise share less (or, for a group name, nothing at all) without
anyone noticing. ``parse_policy`` collects every problem it finds and raises one
``PolicyError`` naming, for each, the rule and the key.

How audiences are read (deterministic, and documented in ``parse_policy``):

- ``*`` is every counterpart; a name defined under ``groups`` (or passed in
  ``known_groups``, e.g. the groups of the hub's member directory) is a group;
- any other name matching the node-id pattern ``^[a-z][a-z0-9_]{1,31}$`` is a node id;
  when the caller passes ``known_nodes``, it must also be one of those or be listed in
  one of the policy's groups, otherwise it is an unknown audience;
- anything else (``MoU``, ``no-mou``, ``""``) is an unknown group.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Hashable
from typing import Any

import yaml

from protocol.listing import CATEGORIES, VISIBILITIES, shareable_fields

from .compiled import covers
from .model import (
    NODE_ID_RE,
    RELAY_KEYS,
    RULE_KEYS,
    STAR,
    TOP_KEYS,
    Policy,
    PolicyError,
    PolicyIssue,
    Relay,
    Rule,
)
from .write import default_policy_yaml, policy_to_yaml

__all__ = [
    "PolicyError",
    "PolicyIssue",
    "default_policy_yaml",
    "parse_policy",
    "policy_digest",
    "policy_from_data",
    "policy_to_yaml",
]


try:
    from yaml import CSafeLoader as _SafeLoader  # libyaml: ten times faster
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class _StrictLoader(_SafeLoader):
    """A safe loader that records duplicate mapping keys instead of keeping the last one."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, int]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    self.duplicates.append((key_node.value, key_node.start_mark.line + 1))
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def policy_digest(text: str) -> str:
    """SHA-256 (hex) of the policy text as stored, the ``policy digest`` nodes exchange."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_policy(
    text: str,
    *,
    known_nodes: Collection[str] | None = None,
    known_groups: Collection[str] | None = None,
) -> Policy:
    """Parse and check a policy document; raise ``PolicyError`` listing every problem.

    ``known_nodes`` (e.g. the member directory's node ids and the node's bilateral peers)
    turns on the check that every node-id audience names a real counterpart;
    ``known_groups`` names groups defined outside the policy (the directory's groups).
    """
    loader = _StrictLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise PolicyError([PolicyIssue(None, None, _yaml_message(exc))]) from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        message = str(exc).split(":", 1)[0]
        raise PolicyError([PolicyIssue(None, None, f"not valid YAML: {message}")]) from None
    finally:
        loader.dispose()
    issues = [
        PolicyIssue(None, key, f"duplicate key at line {line}; each key may appear once")
        for key, line in loader.duplicates
    ]
    try:
        policy = policy_from_data(data, known_nodes=known_nodes, known_groups=known_groups)
    except PolicyError as exc:
        issues.extend(exc.issues)
    if issues:
        raise PolicyError(issues)
    return policy


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = str(getattr(exc, "context", None) or "")
    hint = ' (write the audience "*" in quotes)' if "alias" in context + problem else ""
    return f"not valid YAML: {problem}{where}{hint}"


def policy_from_data(
    data: Any,
    *,
    known_nodes: Collection[str] | None = None,
    known_groups: Collection[str] | None = None,
) -> Policy:
    """Check already-decoded policy data (YAML or JSON) and build the ``Policy``."""
    checker = _Checker(known_nodes, known_groups)
    policy = checker.policy(data)
    if checker.issues:
        raise PolicyError(checker.issues)
    return policy


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean (YAML reads yes/no/on/off as booleans; quote the value)"
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", int: "a number"}.get(
        type(value), type(value).__name__
    )


class _Checker:
    """Collects issues while walking the decoded document."""

    def __init__(
        self, known_nodes: Collection[str] | None, known_groups: Collection[str] | None
    ) -> None:
        self.known_nodes = None if known_nodes is None else frozenset(known_nodes)
        self.known_groups = frozenset(known_groups or ())
        self.issues: list[PolicyIssue] = []
        self.groups: dict[str, tuple[str, ...]] = {}
        self.grouped_nodes: frozenset[str] = frozenset()

    def add(self, rule: int | None, key: str | None, message: str, raw: Any = None) -> None:
        audience = category = None
        if isinstance(raw, dict):
            audience = raw.get("audience") if isinstance(raw.get("audience"), str) else None
            category = raw.get("category") if isinstance(raw.get("category"), str) else None
        self.issues.append(PolicyIssue(rule, key, message, audience, category))

    def policy(self, data: Any) -> Policy:
        if data is None:
            self.add(None, None, "the policy is empty (write 'rules: []' to share nothing)")
            return Policy()
        if not isinstance(data, dict):
            self.add(None, None, f"the policy must be a mapping, got {_type_name(data)}")
            return Policy()
        for key in data:
            if key not in TOP_KEYS:
                self.add(None, str(key), "unknown top-level key (expected: groups, rules)")
        self.check_groups(data.get("groups", {}))
        if "rules" not in data:
            self.add(None, "rules", "missing (write 'rules: []' to share nothing)")
        raw_rules = data.get("rules", [])
        if raw_rules is None:
            raw_rules = []
        if not isinstance(raw_rules, list):
            self.add(None, "rules", f"must be a list of rules, got {_type_name(raw_rules)}")
            raw_rules = []
        rules: list[Rule] = []
        first_for: dict[tuple[str, str], int] = {}
        for number, raw in enumerate(raw_rules, start=1):
            rule = self.rule(number, raw)
            if rule is None:
                continue
            pair = (rule.audience, rule.category)
            if pair in first_for:
                self.add(
                    number,
                    "audience",
                    f"duplicate rule: rule {first_for[pair]} already covers audience "
                    f"{rule.audience} for category {rule.category}",
                    raw,
                )
            else:
                first_for[pair] = number
            rules.append(rule)
        return Policy(groups=dict(self.groups), rules=tuple(rules))

    def check_groups(self, raw: Any) -> None:
        if raw is None:
            return
        if not isinstance(raw, dict):
            self.add(
                None, "groups", f"must be a mapping of name -> node ids, got {_type_name(raw)}"
            )
            return
        for name, members in raw.items():
            key = f"groups.{name}"
            if not isinstance(name, str):
                self.add(None, key, f"a group name must be a string, got {_type_name(name)}")
                continue
            if STAR in name:
                self.add(None, key, "'*' means every audience and cannot name a group")
                continue
            if not NODE_ID_RE.match(name):
                self.add(None, key, "a group name must match ^[a-z][a-z0-9_]{1,31}$")
                continue
            nodes = self.string_list(None, key, members, "node ids", raw=None, empty=True)
            if nodes is None:
                continue
            for node in nodes:
                if not NODE_ID_RE.match(node):
                    self.add(None, key, f"'{node}' is not a node id (^[a-z][a-z0-9_]{{1,31}}$)")
            self.groups[name] = tuple(nodes)
        self.grouped_nodes = frozenset(n for nodes in self.groups.values() for n in nodes)
        for name in self.groups:
            if name in self.grouped_nodes:
                self.add(None, f"groups.{name}", f"'{name}' is both a group and a node id")

    def string_list(
        self, rule: int | None, key: str, value: Any, what: str, raw: Any, *, empty: bool = False
    ) -> list[str] | None:
        """A list of distinct strings (non-empty unless ``empty``), or None after recording
        the issue."""
        if not isinstance(value, list):
            self.add(rule, key, f"must be a list of {what}, got {_type_name(value)}", raw)
            return None
        if not value and not empty:
            self.add(rule, key, f"must list at least one of the {what}", raw)
            return None
        bad = [item for item in value if not isinstance(item, str)]
        if bad:
            self.add(rule, key, f"must list {what} as strings, got {_type_name(bad[0])}", raw)
            return None
        seen: set[str] = set()
        for item in value:
            if item in seen:
                self.add(rule, key, f"'{item}' is listed twice", raw)
            seen.add(item)
        return list(dict.fromkeys(value))

    def audience_problem(self, name: str) -> str | None:
        if name == STAR or name in self.groups or name in self.known_groups:
            return None
        if not NODE_ID_RE.match(name):
            return f"unknown group '{name}': not a group of this policy, not '*', not a node id"
        if self.known_nodes is not None and name not in self.known_nodes:
            if name not in self.grouped_nodes:
                return f"unknown audience '{name}': not a group, not '*', not a known node"
        return None

    def rule(self, number: int, raw: Any) -> Rule | None:
        if not isinstance(raw, dict):
            self.add(number, None, f"a rule must be a mapping, got {_type_name(raw)}")
            return None
        for key in raw:
            if key not in RULE_KEYS:
                self.add(
                    number, str(key), f"unknown rule key (expected: {', '.join(RULE_KEYS)})", raw
                )
        ok = True
        audience = raw.get("audience")
        if not isinstance(audience, str):
            self.add(number, "audience", f"must be a string, got {_type_name(audience)}", raw)
            ok = False
        elif (problem := self.audience_problem(audience)) is not None:
            self.add(number, "audience", problem, raw)
            ok = False
        category = raw.get("category")
        if not isinstance(category, str):
            self.add(number, "category", f"must be a string, got {_type_name(category)}", raw)
            ok = False
        elif category not in CATEGORIES:
            self.add(
                number,
                "category",
                f"unknown category '{category}' (expected: {', '.join(CATEGORIES)})",
                raw,
            )
            ok = False
        visibility = self.visibility(number, raw)
        allowed = shareable_fields(category) if category in CATEGORIES else None
        fields = self.fields(number, "fields", raw.get("fields"), allowed, raw)
        relay_ok, relay = self.relay(number, raw, allowed, fields)
        if not ok or visibility is None or fields is None or not relay_ok:
            return None
        assert isinstance(audience, str) and isinstance(category, str)
        return Rule(audience, category, tuple(visibility), tuple(fields), relay)

    def visibility(self, number: int, raw: dict[str, Any]) -> list[str] | None:
        values = self.string_list(number, "visibility", raw.get("visibility"), "visibilities", raw)
        if values is None:
            return None
        good = True
        for value in values:
            if value == "private":
                self.add(number, "visibility", "'private' listings never leave the node", raw)
                good = False
            elif value not in VISIBILITIES:
                self.add(
                    number,
                    "visibility",
                    f"unknown visibility '{value}' (expected: public, network, bilateral)",
                    raw,
                )
                good = False
        return values if good else None

    def fields(
        self,
        number: int,
        key: str,
        value: Any,
        allowed: tuple[str, ...] | None,
        raw: dict[str, Any],
    ) -> list[str] | None:
        values = self.string_list(number, key, value, "field paths", raw)
        if values is None or allowed is None:
            return None
        good = True
        for path in values:
            if path not in allowed:
                self.add(number, key, f"unknown field '{path}' for {raw['category']}", raw)
                good = False
        return values if good else None

    def relay(
        self,
        number: int,
        raw: dict[str, Any],
        allowed: tuple[str, ...] | None,
        rule_fields: list[str] | None,
    ) -> tuple[bool, Relay | None]:
        """(True, the relay or None when absent), or (False, None) after recording issues."""
        value = raw.get("relay")
        if value is None:
            return True, None
        if not isinstance(value, dict):
            self.add(
                number, "relay", f"must be a mapping with to, fields, got {_type_name(value)}", raw
            )
            return False, None
        for key in value:
            if key not in RELAY_KEYS:
                self.add(number, f"relay.{key}", "unknown relay key (expected: to, fields)", raw)
        good = True
        targets = self.string_list(number, "relay.to", value.get("to"), "audiences", raw)
        for target in targets or ():
            if (problem := self.audience_problem(target)) is not None:
                self.add(number, "relay.to", problem, raw)
                good = False
        fields = self.fields(number, "relay.fields", value.get("fields"), allowed, raw)
        if fields is not None and rule_fields is not None:
            for path in fields:
                if not covers(rule_fields, path):
                    self.add(
                        number,
                        "relay.fields",
                        f"'{path}' is not among the rule's fields, so the hub never has it",
                        raw,
                    )
                    good = False
        if targets is None or fields is None or not good:
            return False, None
        return True, Relay(tuple(targets), tuple(fields))
