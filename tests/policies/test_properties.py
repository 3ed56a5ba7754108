"""Property-based tests: the sharing guarantees hold for any listing, policy and audience.

Over 10,000 generated cases in total (6,500 + 1,500 + 1,000 + 1,000 examples), checked
against a small reference implementation written here, independent of ``policies.compiled``:
nothing outside the rule's fields, private never leaves, bilateral only to share_with,
network only to members, no contact detail or name without a rule naming it (and consent
for real names, wherever they would appear), and the same inputs give the same view.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import (
    Audience,
    Decision,
    Policy,
    Rule,
    compile_policy,
    diff_policies,
    parse_policy,
    policy_to_yaml,
    relay_view,
)
from policies.evaluate import evaluate

from .strategies import NODE_POOL, NOW, audiences, cases, listings, policies

NESTED = {"contact", "organization", "parties"}
MARKS = re.compile("[\u0300-\u036f]")


def fold(text: str) -> str:
    """Text without accents (enough for the Vietnamese names the strategies make)."""
    return MARKS.sub("", unicodedata.normalize("NFKD", text))


ORG_NAME_PATHS = {
    "tech_offer": ("organization.name",),
    "tech_request": ("organization.name",),
    "event": ("organization.name",),
    "organization": ("name",),
    "expert": ("affiliation",),
    "agreement": ("parties.name",),
}


def fast(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def covered(fields: tuple[str, ...], path: str) -> bool:
    top = path.split(".", maxsplit=1)[0]
    return path in fields or top in fields


def reference_rule(policy: Policy, audience: Audience, category: str) -> tuple[int, Rule] | None:
    """Node id, else the first group rule in file order, else '*'; 1-based index."""
    numbered = [(i, r) for i, r in enumerate(policy.rules, start=1) if r.category == category]
    for test in (
        lambda r: r.audience == audience.node_id,
        lambda r: r.audience in audience.groups,
        lambda r: r.audience == "*",
    ):
        found = [(i, r) for i, r in numbered if test(r)]
        if found:
            return found[0]
    return None


def reference_code(listing: dict[str, Any], policy: Policy, audience: Audience) -> str:
    visibility = listing["visibility"]
    if visibility == "private":
        return "private"
    if listing["expires"] <= NOW:
        return "expired"
    if visibility == "bilateral" and audience.node_id not in listing["share_with"]:
        return "not_in_share_with"
    if visibility == "network" and not audience.member:
        return "not_member"
    found = reference_rule(policy, audience, listing["category"])
    if found is None:
        return "no_rule"
    return "shared" if visibility in found[1].visibility else "visibility_not_in_rule"


def leaf_paths(fields: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for key, value in fields.items():
        if key in NESTED:
            for item in value if isinstance(value, list) else [value]:
                out.update(f"{key}.{sub}" for sub in item)
        else:
            out.add(key)
    return out


def names_and_conditions(listing: dict[str, Any], rule: Rule) -> list[tuple[str, bool]]:
    """(a name or contact detail of the listing, may it appear in the view?)"""
    consent = listing["rights"]["name_logo_consent"]
    category = listing["category"]
    fields = rule.fields
    out: list[tuple[str, bool]] = []
    if category in ("tech_offer", "tech_request", "event"):
        out.append(
            (listing["rights"]["ip_owner"][0], consent and covered(fields, "organization.name"))
        )
    elif category == "organization":
        out.append((listing["rights"]["ip_owner"][0], consent and covered(fields, "name")))
    elif category == "expert":
        out.append((listing["rights"]["ip_owner"][0], consent and covered(fields, "affiliation")))
        if "name" in listing:
            out.append((listing["name"], consent and "name" in fields))
    else:
        parties = listing.get("parties") or []
        allowed = consent and covered(fields, "parties.name")
        out.extend((party["name"], allowed) for party in parties)
    reveals = consent and any(covered(fields, p) for p in ORG_NAME_PATHS[category])
    owners = listing["rights"]["ip_owner"]
    out.extend((owner, reveals) for owner in owners if owner.startswith("Coowner"))
    for key, value in (listing.get("contact") or {}).items():
        out.append((value, covered(fields, f"contact.{key}")))
    return out


def reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


@fast(6500)
@given(cases())
def test_evaluation_guarantees(case: tuple[dict[str, Any], Policy, Audience]) -> None:
    listing, policy, audience = case
    compiled = compile_policy(policy)
    decision = evaluate(listing, audience, compiled, NOW)
    assert decision.code == reference_code(listing, policy, audience)
    # deterministic, and blind to the order of keys
    assert evaluate(listing, audience, compiled, NOW) == decision
    assert evaluate(reversed_keys(listing), audience, compiled, NOW) == decision
    if decision.view is None:
        assert decision.code != "shared"
        return
    view = decision.view
    found = reference_rule(policy, audience, listing["category"])
    assert found is not None and decision.rule_index == found[0]
    rule = found[1]
    assert listing["visibility"] != "private"
    if listing["visibility"] == "bilateral":
        assert audience.node_id in listing["share_with"]
    if listing["visibility"] == "network":
        assert audience.member
    assert set(view) == {"id", "category", "version", "updated", "expires", "fields", "rights"}
    for path in leaf_paths(view["fields"]):
        assert covered(rule.fields, path), (path, rule.fields)
    text = fold(json.dumps(view, ensure_ascii=False))
    for value, allowed in names_and_conditions(listing, rule):
        if not allowed:
            assert fold(value) not in text, (value, rule.fields)
    if "summary" not in view["fields"]:
        assert view["rights"]["attribution"] == []


@fast(1000)
@given(policies(valid=True))
def test_yaml_roundtrip(policy: Policy) -> None:
    assert parse_policy(policy_to_yaml(policy)) == policy


@fast(1500)
@given(cases(), st.data())
def test_relay_view_is_a_subset_for_named_recipients_only(
    case: tuple[dict[str, Any], Policy, Audience], data: st.DataObject
) -> None:
    listing, policy, audience = case
    decision = evaluate(listing, audience, policy, NOW)
    if decision.view is None or decision.rule_index is None:
        return
    relay = policy.rules[decision.rule_index - 1].relay
    recipient = data.draw(audiences(policy))
    fields = decision.view["fields"]
    out = relay_view(fields, relay, recipient)
    if relay is None:
        assert out is None
        return
    named = any(t in ("*", recipient.node_id) or t in recipient.groups for t in relay.to)
    if not named:
        assert out is None
        return
    assert out is not None
    for path in leaf_paths(out):
        assert covered(relay.fields, path)
        assert path in leaf_paths(fields)
    for key, value in out.items():
        if key not in NESTED:
            assert value == fields[key]


def _visible(decisions: list[Decision], ids: list[str]) -> set[str]:
    return {i for i, d in zip(ids, decisions, strict=True) if d.view is not None}


@fast(1000)
@given(policies(), policies(), st.lists(listings(), min_size=1, max_size=4))
def test_diff_agrees_with_evaluate(old: Policy, new: Policy, items: list[dict[str, Any]]) -> None:
    for n, item in enumerate(items):
        item["id"] = f"{item['id']}-{n}"
    ids = [item["id"] for item in items]
    diffs = diff_policies(old, new, items, NODE_POOL, NOW)
    same = diff_policies(old, old, items, NODE_POOL, NOW)
    compiled_old, compiled_new = compile_policy(old), compile_policy(new)
    for node in NODE_POOL:
        assert not same[node].changed
        audience_old = Audience(node, old.groups_of(node))
        audience_new = Audience(node, new.groups_of(node))
        before = _visible([evaluate(i, audience_old, compiled_old, NOW) for i in items], ids)
        after = _visible([evaluate(i, audience_new, compiled_new, NOW) for i in items], ids)
        assert set(diffs[node].becoming_visible) == after - before
        assert set(diffs[node].becoming_invisible) == before - after
        assert (diffs[node].visible_before, diffs[node].visible_after) == (len(before), len(after))
