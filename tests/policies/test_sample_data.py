"""The default policy on the sample data, checked against counts computed independently.

The expected numbers come from plain Python over the raw JSONL (dates compared as
strings), never from ``evaluate``, so a bug in the evaluator cannot hide in its own oracle.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from policies import (
    Audience,
    CompiledPolicy,
    Policy,
    Rule,
    audience_for,
    diff_policies,
    format_diff_table,
)
from policies.evaluate import evaluate

from .conftest import NODES, NOW_MS

TODAY = "2026-11-28"
MOU = {"cn", "th", "la", "kh", "mm", "vn", "bn", "id"}
NO_MOU = {"my", "ph"}


def independently_visible(raw: list[dict[str, Any]], node: str) -> set[str]:
    """Ids another node's default policy shares with ``node`` (own listings excluded)."""
    out = set()
    for record in raw:
        if record["owner"] == node or record["expires"] <= TODAY:
            continue
        category, visibility = record["category"], record["visibility"]
        if node == "cn":
            ok = category in {"tech_offer", "tech_request", "expert"} and visibility in {
                "public",
                "network",
            }
        elif node in MOU:
            ok = category in {"tech_offer", "tech_request"} and visibility in {"public", "network"}
        elif node in NO_MOU:
            ok = category in {"tech_offer", "tech_request"} and visibility == "public"
        else:
            ok = False
        if ok:
            out.add(record["id"])
    return out


def visible_by_evaluate(
    listings: list[dict[str, Any]], audience: Audience, policy: CompiledPolicy
) -> set[str]:
    return {
        listing["id"]
        for listing in listings
        if listing["owner"] != audience.node_id
        and evaluate(listing, audience, policy, NOW_MS).view is not None
    }


def test_now_is_the_reference_date() -> None:
    assert NOW_MS == 1_795_824_000_000


@pytest.mark.parametrize(("node", "expected"), [("cn", 96), ("th", 135), ("my", 82)])
def test_default_policy_counts_match_an_independent_count(
    raw_records: list[dict[str, Any]],
    listings: list[dict[str, Any]],
    default_compiled: CompiledPolicy,
    node: str,
    expected: int,
) -> None:
    oracle = independently_visible(raw_records, node)
    got = visible_by_evaluate(listings, audience_for(node, default_compiled), default_compiled)
    assert got == oracle
    assert len(got) == expected


def test_default_policy_every_node_matches_the_oracle(
    raw_records: list[dict[str, Any]],
    listings: list[dict[str, Any]],
    default_compiled: CompiledPolicy,
) -> None:
    for node in (*NODES, "sg"):
        audience = audience_for(node, default_compiled)
        assert visible_by_evaluate(listings, audience, default_compiled) == independently_visible(
            raw_records, node
        ), node


def test_default_policy_never_sends_contacts_or_unconsented_names(
    listings: list[dict[str, Any]], default_compiled: CompiledPolicy
) -> None:
    shared = 0
    for listing in listings:
        for node in NODES:
            view = evaluate(
                listing, audience_for(node, default_compiled), default_compiled, NOW_MS
            ).view
            if view is None:
                continue
            shared += 1
            text = json.dumps(view, ensure_ascii=False)
            assert "contact" not in view["fields"]
            for value in (listing.get("contact") or {}).values():
                if value != listing.get("name"):  # an expert is their own contact
                    assert value not in json.dumps(view["fields"], ensure_ascii=False)
            assert "@" not in text
            org = (listing.get("organization") or {}).get("name")
            if org is not None:
                assert org not in text
            if listing["category"] != "expert":
                for owner in listing["rights"]["ip_owner"]:
                    assert owner not in text
            elif not listing["rights"]["name_logo_consent"]:
                assert listing["name"] not in text and listing["affiliation"] not in text
    assert shared > 1000


def narrowed(policy: Policy) -> Policy:
    """The default policy with network offers no longer shared with the mou group."""
    rules = tuple(
        Rule(r.audience, r.category, ("public",), r.fields, r.relay)
        if (r.audience, r.category) == ("mou", "tech_offer")
        else r
        for r in policy.rules
    )
    return Policy(groups=policy.groups, rules=rules)


def test_narrowing_diff_matches_an_independent_count(
    raw_records: list[dict[str, Any]], listings: list[dict[str, Any]], default_policy: Policy
) -> None:
    diffs = diff_policies(
        default_policy, narrowed(default_policy), listings, [*NODES, "sg"], NOW_MS
    )
    network_offers = sorted(
        r["id"]
        for r in raw_records
        if r["category"] == "tech_offer" and r["visibility"] == "network" and r["expires"] > TODAY
    )
    assert len(network_offers) == 34
    for node in (*NODES, "sg"):
        diff = diffs[node]
        # cn keeps its own rule; no_mou never had network offers; sg has no rule at all
        expected = network_offers if node in MOU - {"cn"} else []
        assert list(diff.becoming_invisible) == expected, node
        assert diff.becoming_visible == ()
        assert diff.visible_before - diff.visible_after == len(expected)
        assert diff.fields_appearing == {} and diff.fields_disappearing == {}
    table = format_diff_table(diffs)
    assert table.splitlines()[0].split() == [
        "audience",
        "visible",
        "+listings",
        "-listings",
        "fields",
        "appearing",
        "fields",
        "disappearing",
    ]
    assert len(table.splitlines()) == 2 + 11


def test_widening_fields_diff_counts_listings_per_field(
    raw_records: list[dict[str, Any]], listings: list[dict[str, Any]], default_policy: Policy
) -> None:
    rules = tuple(
        Rule(
            r.audience, r.category, r.visibility, (*r.fields, "contact.email", "organization.type")
        )
        if (r.audience, r.category) == ("no_mou", "tech_request")
        else Rule(
            r.audience,
            r.category,
            r.visibility,
            tuple(f for f in r.fields if f != "summary"),
            r.relay,
        )
        if (r.audience, r.category) == ("no_mou", "tech_offer")
        else r
        for r in default_policy.rules
    )
    diffs = diff_policies(
        default_policy, Policy(default_policy.groups, rules), listings, ["my", "th"], NOW_MS
    )
    public_requests = [
        r
        for r in raw_records
        if r["category"] == "tech_request" and r["visibility"] == "public" and r["expires"] > TODAY
    ]
    public_offers = [
        r
        for r in raw_records
        if r["category"] == "tech_offer" and r["visibility"] == "public" and r["expires"] > TODAY
    ]
    assert diffs["my"].fields_appearing == {
        "contact.email": sum("email" in r["contact"] for r in public_requests),
        "organization.type": len(public_requests),
    }
    assert diffs["my"].fields_disappearing == {"summary": len(public_offers)}
    assert not diffs["th"].changed
    table = format_diff_table(diffs)
    assert f"contact.email x{len(public_requests)}" in table
    assert f"summary x{len(public_offers)}" in table


def test_diff_with_audience_objects_and_group_moves(
    listings: list[dict[str, Any]], default_policy: Policy
) -> None:
    moved = Policy(
        groups={"mou": ("cn", "th", "la", "kh", "mm", "vn", "bn", "id", "my"), "no_mou": ("ph",)},
        rules=default_policy.rules,
    )
    diffs = diff_policies(
        default_policy, moved, listings, ["my", Audience("ph", frozenset({"no_mou"}))], NOW_MS
    )
    assert diffs["my"].becoming_visible and not diffs["my"].becoming_invisible
    assert "organization.type" in diffs["my"].fields_appearing
    assert not diffs["ph"].changed
