"""The sharing policy as a grid (category x audience), and grid edits back to policy text.

The console shows a policy as a table: one row per data category, one column per
audience (the hub, each group, each country node, and ``*``, everyone). A cell is the
rule written for exactly that pair, if any; without one, the cell says which less
specific rule (a group's, or ``*``) decides for it. Editing a cell replaces, adds or
removes that one rule, so every policy the parser accepts can be shown and edited here.

Edits go back into the operator's own text: only the lines of the rules that changed are
rewritten (new rules are added after the last one), so comments, groups and the order of
the other rules stay as they were. The result is parsed again and must equal the edited
policy; if the text's layout does not allow a line-level edit, the policy is written in
the standard layout of ``policies.write`` with the file's leading comments kept.

No web handlers, no database: ``node.console.sharing`` gathers the audiences. Messages
are message ids (``N_``) the pages translate.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import yaml

from node.ui.i18n import N_
from policies.compiled import compile_policy, covers
from policies.evaluate import audience_for
from policies.model import STAR, Policy, Relay, Rule
from policies.parse import parse_policy
from policies.write import policy_to_yaml
from protocol.listing import CATEGORIES, VISIBILITIES, shareable_fields

RULE_VISIBILITIES = tuple(v for v in VISIBILITIES if v != "private")


@dataclass(frozen=True, slots=True)
class Column:
    """One audience of the grid: ``key`` is what a rule's ``audience`` says."""

    key: str
    kind: str  # "hub" | "group" | "node" | "public"
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Cell:
    """The rule for one category and one audience (``rule``, numbered ``index``), or the
    less specific rule that decides instead (``via``: its audience; None: nothing)."""

    category: str
    audience: str
    rule: Rule | None = None
    index: int | None = None
    via: str | None = None
    via_rule: Rule | None = None


@dataclass(frozen=True, slots=True)
class CellEdit:
    """What a cell's editor sends: share or not, and the rule's parts."""

    share: bool
    visibility: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    relay_to: tuple[str, ...] = ()
    relay_fields: tuple[str, ...] = ()


@dataclass
class GridError(ValueError):
    """An edit that cannot become a rule: input name -> message id."""

    problems: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.problems.items())


def columns_for(
    policy: Policy,
    *,
    hub_id: str,
    own_id: str,
    directory_groups: Mapping[str, Collection[str]],
    directory_nodes: Collection[str],
) -> list[Column]:
    """The hub, then groups, then node ids (sorted), then ``*``: every audience the policy,
    the member directory or the hub id names, except this node itself."""
    groups: dict[str, set[str]] = {}
    for name, listed in policy.groups.items():
        groups.setdefault(name, set()).update(listed)
    for name, known in directory_groups.items():
        groups.setdefault(name, set()).update(known)
    nodes = set(directory_nodes)
    for names in groups.values():
        nodes.update(names)
    for rule in policy.rules:
        named = [rule.audience, *(rule.relay.to if rule.relay else ())]
        for audience in named:
            if audience != STAR and audience not in groups:
                nodes.add(audience)
    nodes.discard(own_id)
    columns: list[Column] = []
    if hub_id != own_id:
        columns.append(Column(hub_id, "hub"))
    nodes.discard(hub_id)
    columns.extend(Column(name, "group", tuple(sorted(groups[name]))) for name in sorted(groups))
    columns.extend(Column(node, "node") for node in sorted(nodes - set(groups)))
    columns.append(Column(STAR, "public"))
    return columns


def grid_cells(
    policy: Policy, columns: Sequence[Column], extra_groups: Mapping[str, Collection[str]]
) -> dict[tuple[str, str], Cell]:
    """(category, audience) -> cell, for every category and column."""
    compiled = compile_policy(policy)
    own = {(r.category, r.audience): (i, r) for i, r in enumerate(policy.rules, start=1)}
    cells: dict[tuple[str, str], Cell] = {}
    for category in CATEGORIES:
        for column in columns:
            key = (category, column.key)
            if key in own:
                index, rule = own[key]
                cells[key] = Cell(category, column.key, rule, index)
                continue
            via: str | None = None
            via_rule: Rule | None = None
            if column.kind in ("hub", "node"):
                match = compiled.match(audience_for(column.key, policy, extra_groups), category)
                if match is not None:
                    via, via_rule = match.key, match.rule.rule
            elif column.kind == "group" and category in compiled.star:
                via, via_rule = STAR, compiled.star[category].rule
            cells[key] = Cell(category, column.key, via=via, via_rule=via_rule)
    return cells


def _ordered(
    chosen: Collection[str], old: Sequence[str], universe: Sequence[str]
) -> tuple[str, ...]:
    """``chosen`` in the old rule's order, then new ones in ``universe`` order."""
    kept = [item for item in old if item in chosen]
    return tuple(kept + [item for item in universe if item in chosen and item not in kept])


def edit_cell(policy: Policy, category: str, audience: str, edit: CellEdit) -> Policy:
    """``policy`` with the rule for (category, audience) replaced, added or removed.

    A rule whose parts are unchanged (as sets) is kept exactly, so an untouched cell never
    changes the text. Raises ``GridError`` (input name -> message id) for a rule the
    policy language cannot hold.
    """
    if category not in CATEGORIES:
        raise GridError({"category": N_("Unknown category.")})
    allowed = shareable_fields(category)
    index = next(
        (i for i, r in enumerate(policy.rules) if (r.category, r.audience) == (category, audience)),
        None,
    )
    old = policy.rules[index] if index is not None else None
    rules = list(policy.rules)
    if not edit.share:
        if index is not None:
            del rules[index]
        return Policy(groups=policy.groups, rules=tuple(rules))
    problems: dict[str, str] = {}
    if not edit.visibility:
        problems["visibility"] = N_("Choose at least one kind of listing to share.")
    elif any(v not in RULE_VISIBILITIES for v in edit.visibility):
        problems["visibility"] = N_("Unknown kind of listing.")
    if not edit.fields:
        problems["fields"] = N_("Choose at least one field to share.")
    elif any(f not in allowed for f in edit.fields):
        problems["fields"] = N_("Unknown field for this category.")
    if bool(edit.relay_to) != bool(edit.relay_fields):
        problems["relay"] = N_(
            "To let the hub pass this on, choose both who may receive it and which fields."
        )
    elif any(not covers(edit.fields, f) for f in edit.relay_fields):
        problems["relay"] = N_("The hub can only pass on fields it receives: tick them above too.")
    if problems:
        raise GridError(problems)
    old_relay = old.relay if old is not None else None
    relay = None
    if edit.relay_to:
        if old_relay is not None and (
            set(old_relay.to) == set(edit.relay_to)
            and set(old_relay.fields) == set(edit.relay_fields)
        ):
            relay = old_relay
        else:
            relay = Relay(
                _ordered(edit.relay_to, old_relay.to if old_relay else (), edit.relay_to),
                _ordered(edit.relay_fields, old_relay.fields if old_relay else (), allowed),
            )
    new = Rule(
        audience,
        category,
        _ordered(edit.visibility, old.visibility if old else (), RULE_VISIBILITIES),
        _ordered(edit.fields, old.fields if old else (), allowed),
        relay,
    )
    if old is not None and _same(old, new):
        return policy
    if index is None:
        rules.append(new)
    else:
        rules[index] = new
    return Policy(groups=policy.groups, rules=tuple(rules))


def _same(a: Rule, b: Rule) -> bool:
    relay_a = (set(a.relay.to), set(a.relay.fields)) if a.relay else None
    relay_b = (set(b.relay.to), set(b.relay.fields)) if b.relay else None
    return (
        set(a.visibility) == set(b.visibility)
        and set(a.fields) == set(b.fields)
        and relay_a == relay_b
    )


def changed_cells(old: Policy, new: Policy) -> list[tuple[str, str, Rule | None, Rule | None]]:
    """(category, audience, old rule, new rule) for every pair whose rule differs."""
    before = {(r.category, r.audience): r for r in old.rules}
    after = {(r.category, r.audience): r for r in new.rules}
    out = []
    for key in sorted(set(before) | set(after), key=lambda k: (CATEGORIES.index(k[0]), k[1])):
        a, b = before.get(key), after.get(key)
        if a is None or b is None or not _same(a, b):
            out.append((key[0], key[1], a, b))
    return out


# --- back to text -----------------------------------------------------------------------


def _rule_lines(rule: Rule, indent: int) -> list[str]:
    rendered = policy_to_yaml(Policy(rules=(rule,))).splitlines()[1:]
    return [" " * indent + line[2:] + "\n" for line in rendered]


def _content_end(node: yaml.Node) -> yaml.Mark:
    """Where a node's own text ends (a block collection ends with its last value)."""
    if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _content_end(node.value[-1])
    return node.end_mark


def _end_line(node: yaml.Node) -> int:
    mark = _content_end(node)
    return mark.line if mark.column > 0 else mark.line - 1


def _rules_node(text: str) -> tuple[yaml.Node, yaml.Node] | None:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if not isinstance(root, yaml.MappingNode):
        return None
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "rules":
            return key, value
    return None


def rule_lines(text: str) -> dict[int, int]:
    """Rule number (1-based) -> the line (1-based) where it starts, as far as the YAML
    can be read; for showing a problem beside its rule."""
    found = _rules_node(text)
    if found is None or not isinstance(found[1], yaml.SequenceNode):
        return {}
    return {n: item.start_mark.line + 1 for n, item in enumerate(found[1].value, start=1)}


def _line_edit(text: str, old: Policy, new: Policy) -> str | None:
    """``text`` with only the changed rules' lines rewritten, or None if its layout does
    not allow that."""
    if dict(old.groups) != dict(new.groups):
        return None
    found = _rules_node(text)
    if found is None:
        return None
    key_node, seq = found
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    old_keys = [(r.category, r.audience) for r in old.rules]
    new_by_key = {(r.category, r.audience): r for r in new.rules}
    added = [r for r in new.rules if (r.category, r.audience) not in set(old_keys)]
    if not isinstance(seq, yaml.SequenceNode) or seq.flow_style or not seq.value:
        empty = (isinstance(seq, yaml.SequenceNode) and not seq.value) or (
            isinstance(seq, yaml.ScalarNode) and seq.value in ("", "~", "null")
        )
        if not empty or old.rules:
            return None
        first, last = key_node.start_mark.line, _end_line(seq)
        if seq.end_mark.line != first or key_node.start_mark.column != 0:
            return None
        body = ["rules:" + (" []" if not new.rules else "") + "\n"]
        for rule in new.rules:
            body.extend(_rule_lines(rule, 2))
        return "".join(lines[:first] + body + lines[last + 1 :])
    if len(seq.value) != len(old.rules):
        return None
    spans: list[tuple[int, int, int]] = []
    for item in seq.value:
        start = item.start_mark.line
        prefix = lines[start][: item.start_mark.column]
        if prefix.strip() != "-" or item.start_mark.column != len(prefix):
            return None
        spans.append((start, _end_line(item), len(prefix) - len(prefix.lstrip())))
    out = lines[: spans[0][0]]
    for number, (start, end, indent) in enumerate(spans):
        rule_old = old.rules[number]
        rule_new = new_by_key.get(old_keys[number])
        if rule_new == rule_old:
            out.extend(lines[start : end + 1])
        elif rule_new is not None:
            out.extend(_rule_lines(rule_new, indent))
        following = spans[number + 1][0] if number + 1 < len(spans) else end + 1
        if number + 1 == len(spans):
            for rule in added:
                out.extend(_rule_lines(rule, indent))
        out.extend(lines[end + 1 : following])
    out.extend(lines[spans[-1][1] + 1 :])
    return "".join(out)


def _leading_comments(text: str) -> str:
    head = []
    for line in text.splitlines(keepends=True):
        if line.startswith("#") or not line.strip():
            head.append(line if line.endswith("\n") else line + "\n")
        else:
            break
    return "".join(head)


def policy_text(original: str, old: Policy, new: Policy) -> tuple[str, bool]:
    """The text of ``new`` written over ``original`` (the text of ``old``), and whether
    the original layout and comments were kept (False: standard layout)."""
    if new == old:
        return original, True
    edited = _line_edit(original, old, new)
    if edited is not None and _reads_as(edited, new):
        return edited, True
    standard = _leading_comments(original) + policy_to_yaml(new)
    if not _reads_as(standard, new):
        # A value the form let through that no policy holds (a relay target that is no
        # node id, "ZZ"): the PolicyError naming it, for the page to show (was a 500).
        parse_policy(standard)
        raise ValueError("the edited policy does not read back as itself")  # pragma: no cover
    return standard, False


def _reads_as(text: str, policy: Policy) -> bool:
    try:
        parsed = parse_policy(text)
    except ValueError:
        return False
    return parsed.rules == policy.rules and dict(parsed.groups) == dict(policy.groups)
