"""The sharing grid and policy text: grid -> policy -> grid round trips, over the default
policy, the demo's and hand-written ones, with seeded random cell edits."""

from __future__ import annotations

import random

import pytest

from node.console.sharing_grid import (
    RULE_VISIBILITIES,
    CellEdit,
    GridError,
    changed_cells,
    columns_for,
    edit_cell,
    grid_cells,
    policy_text,
    rule_lines,
)
from node.demo import PUBLIC_RULES
from policies.model import Policy
from policies.parse import parse_policy
from policies.write import default_policy_yaml
from protocol.listing import CATEGORIES, shareable_fields

HAND_WRITTEN = """\
# Our center's rules, agreed with the board on 2026-10-01.
groups:
  partners: [th, la]   # the two MoU partners we work with most

rules:
- audience: cn          # the hub
  category: tech_offer
  visibility: [public, network]
  fields: [title, summary, keywords, organization]
  relay: {to: [partners], fields: [title]}

# Experts: only to Thailand, names included (with consent).
- audience: th
  category: expert
  visibility:
    - public
  fields:
    - title
    - name
- {audience: "*", category: event, visibility: [public], fields: [title, start, city]}
"""
EMPTY = "# nothing leaves yet\nrules: []\n"
FLOW = "rules: [{audience: cn, category: expert, visibility: [public], fields: [title]}]\n"
POLICIES = {
    "default": default_policy_yaml("cn"),
    "demo": default_policy_yaml("cn") + PUBLIC_RULES,
    "hand": HAND_WRITTEN,
    "empty": EMPTY,
    "flow": FLOW,
}
DIRECTORY = {"mou": ["th", "la", "vn"], "no_mou": ["my", "ph"], "hub": ["cn"]}


def _columns(policy: Policy) -> list[str]:
    cols = columns_for(
        policy, hub_id="cn", own_id="vn", directory_groups=DIRECTORY, directory_nodes=["sg"]
    )
    return [c.key for c in cols]


def _edit_of_rule(policy: Policy, category: str, audience: str) -> CellEdit:
    for rule in policy.rules:
        if (rule.category, rule.audience) == (category, audience):
            relay = rule.relay
            return CellEdit(
                True,
                rule.visibility,
                rule.fields,
                relay.to if relay else (),
                relay.fields if relay else (),
            )
    return CellEdit(False)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_cell_saved_unchanged_keeps_policy_and_text(name: str) -> None:
    text = POLICIES[name]
    policy = parse_policy(text)
    columns = columns_for(
        policy, hub_id="cn", own_id="vn", directory_groups=DIRECTORY, directory_nodes=["sg"]
    )
    cells = grid_cells(policy, columns, DIRECTORY)
    assert len(cells) == len(CATEGORIES) * len(columns)
    # every rule of the policy is one cell of the grid
    owned = {(c.category, c.audience): c.rule for c in cells.values() if c.rule is not None}
    assert owned == {(r.category, r.audience): r for r in policy.rules}
    for category, audience in cells:
        again = edit_cell(policy, category, audience, _edit_of_rule(policy, category, audience))
        assert again == policy
        assert policy_text(text, policy, again) == (text, True)


def _random_edit(rng: random.Random, category: str, audiences: list[str]) -> CellEdit:
    if rng.random() < 0.2:
        return CellEdit(False)
    allowed = shareable_fields(category)
    fields = tuple(rng.sample(allowed, rng.randint(1, len(allowed))))
    visibility = tuple(rng.sample(RULE_VISIBILITIES, rng.randint(1, 3)))
    if rng.random() < 0.3:
        relay_fields = tuple(rng.sample(fields, rng.randint(1, len(fields))))
        relay_to = tuple(rng.sample(audiences, rng.randint(1, 3)))
        return CellEdit(True, visibility, fields, relay_to, relay_fields)
    return CellEdit(True, visibility, fields)


@pytest.mark.parametrize("name", sorted(POLICIES))
@pytest.mark.parametrize("seed", range(8))
def test_random_edits_round_trip_through_text(name: str, seed: int) -> None:
    rng = random.Random(f"{name}-{seed}")
    text = POLICIES[name]
    policy = parse_policy(text)
    for _ in range(6):
        keys = _columns(policy)
        category = rng.choice(CATEGORIES)
        audience = rng.choice(keys)
        edit = _random_edit(rng, category, [k for k in keys if k != audience])
        new = edit_cell(policy, category, audience, edit)
        new_text, kept = policy_text(text, policy, new)
        reread = parse_policy(new_text)
        assert reread == new
        cells = grid_cells(
            reread,
            columns_for(
                reread, hub_id="cn", own_id="vn", directory_groups=DIRECTORY, directory_nodes=["sg"]
            ),
            DIRECTORY,
        )
        cell = cells[(category, audience)]
        if edit.share:
            assert cell.rule is not None
            assert set(cell.rule.fields) == set(edit.fields)
            assert set(cell.rule.visibility) == set(edit.visibility)
            relay = cell.rule.relay
            got = (set(relay.to), set(relay.fields)) if relay else None
            wanted = (set(edit.relay_to), set(edit.relay_fields)) if edit.relay_to else None
            assert got == wanted
        else:
            assert cell.rule is None
        # only the edited cell changed
        assert {(c, a) for c, a, _, _ in changed_cells(policy, reread)} <= {(category, audience)}
        if kept and name == "hand":
            for comment in ("# Our center's rules", "# the two MoU partners", "# Experts: only"):
                assert comment in new_text
        if name in ("default", "demo", "hand", "empty"):
            assert kept, new_text  # block layouts are edited line by line
        text, policy = new_text, reread


def test_a_changed_rule_rewrites_only_its_own_lines() -> None:
    text = POLICIES["demo"]
    policy = parse_policy(text)
    hub_offer = _edit_of_rule(policy, "tech_offer", "cn")
    fields = tuple(f for f in hub_offer.fields if f != "summary")
    new = edit_cell(
        policy,
        "tech_offer",
        "cn",
        CellEdit(True, hub_offer.visibility, fields, ("mou",), hub_offer.relay_fields),
    )
    new_text, kept = policy_text(text, policy, new)
    assert kept
    old_lines, new_lines = text.splitlines(), new_text.splitlines()
    assert len(old_lines) == len(new_lines)
    differing = [i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b]
    assert len(differing) == 1 and "summary" in old_lines[differing[0]]
    assert "summary" not in new_lines[differing[0]]


def test_edits_the_language_cannot_hold_are_refused_by_input() -> None:
    policy = parse_policy(POLICIES["default"])
    with pytest.raises(GridError) as no_fields:
        edit_cell(policy, "expert", "th", CellEdit(True, ("public",), ()))
    assert set(no_fields.value.problems) == {"fields"}
    with pytest.raises(GridError) as no_vis:
        edit_cell(policy, "expert", "th", CellEdit(True, (), ("title",)))
    assert set(no_vis.value.problems) == {"visibility"}
    with pytest.raises(GridError) as half_relay:
        edit_cell(policy, "expert", "cn", CellEdit(True, ("public",), ("title",), ("mou",)))
    assert set(half_relay.value.problems) == {"relay"}
    with pytest.raises(GridError) as relay_more:
        edit_cell(
            policy, "expert", "cn", CellEdit(True, ("public",), ("title",), ("mou",), ("name",))
        )
    assert set(relay_more.value.problems) == {"relay"}
    with pytest.raises(GridError):
        edit_cell(policy, "expert", "th", CellEdit(True, ("private",), ("title",)))
    with pytest.raises(GridError):
        edit_cell(policy, "expert", "th", CellEdit(True, ("public",), ("budget_range",)))


def test_cells_without_a_rule_name_the_rule_that_decides() -> None:
    policy = parse_policy(POLICIES["demo"])
    cells = grid_cells(
        policy,
        columns_for(policy, hub_id="cn", own_id="vn", directory_groups={}, directory_nodes=[]),
        {},
    )
    assert cells[("tech_offer", "th")].via == "mou"  # th is in the policy's mou group
    assert cells[("tech_offer", "my")].via == "no_mou"
    assert cells[("tech_offer", "cn")].rule is not None  # the hub's own rule
    assert cells[("tech_request", "mou")].rule is not None
    assert cells[("event", "th")].via is None and cells[("event", "th")].rule is None
    assert cells[("tech_offer", "*")].rule is not None


def test_columns_hub_groups_countries_everyone() -> None:
    policy = parse_policy(POLICIES["hand"])
    keys = _columns(policy)
    assert keys[0] == "cn" and keys[-1] == "*"
    assert {"partners", "mou", "no_mou", "hub"} <= set(keys)
    assert "vn" not in keys  # the node itself
    assert {"th", "la", "my", "ph", "sg"} <= set(keys)


def test_rule_lines_point_at_each_rule() -> None:
    lines = rule_lines(HAND_WRITTEN)
    text_lines = HAND_WRITTEN.splitlines()
    assert "audience: cn" in text_lines[lines[1] - 1]
    assert "audience: th" in text_lines[lines[2] - 1]
    assert "event" in text_lines[lines[3] - 1]
    assert rule_lines("rules: [") == {}


def test_the_hubs_own_grid_has_no_hub_column() -> None:
    policy = parse_policy(POLICIES["default"])
    columns = columns_for(
        policy, hub_id="cn", own_id="cn", directory_groups=DIRECTORY, directory_nodes=["vn"]
    )
    assert [c.kind for c in columns].count("hub") == 0
    assert "cn" not in [c.key for c in columns] and "vn" in [c.key for c in columns]
    cells = grid_cells(policy, columns, DIRECTORY)
    # the hub's own rules (audience cn) are not cells of its grid, and stay in its text
    assert all(c.audience != "cn" for c in cells.values())
