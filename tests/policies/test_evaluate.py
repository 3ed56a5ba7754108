"""Evaluation semantics (DESIGN 3, 5, 7), one behaviour per test, on hand-made listings."""

from __future__ import annotations

import json

import pytest

from policies import Audience, audience_for, compile_policy, parse_policy
from policies.evaluate import REASON_CODES, evaluate
from protocol.objects import SummaryListing

from .helpers import DAY, NOW, aud, make, policy, rule

EVERYTHING = ("public", "network", "bilateral")


# -- deny by default and rule precedence ------------------------------------------------


def test_no_rules_shares_nothing() -> None:
    decision = evaluate(make(), aud("th"), compile_policy(policy()), NOW)
    assert (decision.view, decision.code, decision.rule_index) == (None, "no_rule", None)


def test_rule_for_other_category_or_other_audience_shares_nothing() -> None:
    p = compile_policy(
        policy(rule("th", "tech_request", ["title"]), rule("mou", "tech_offer", ["title"]))
    )
    assert evaluate(make(), aud("th"), p, NOW).code == "no_rule"
    assert evaluate(make(), aud("la", "no_mou"), p, NOW).code == "no_rule"
    assert evaluate(make(), aud("la", "mou"), p, NOW).code == "shared"


def test_node_rule_beats_group_rule_beats_star_whatever_the_file_order() -> None:
    p = compile_policy(
        policy(
            rule("*", "tech_offer", ["title"]),
            rule("mou", "tech_offer", ["title", "summary"]),
            rule("th", "tech_offer", ["title", "keywords"]),
            groups={"mou": ("th", "vn")},
        )
    )
    by_node = evaluate(make(), audience_for("th", p), p, NOW)
    by_group = evaluate(make(), audience_for("vn", p), p, NOW)
    by_star = evaluate(make(), audience_for("sg", p), p, NOW)
    assert (by_node.rule_index, by_group.rule_index, by_star.rule_index) == (3, 2, 1)
    assert by_node.view is not None and set(by_node.view["fields"]) == {"title", "keywords"}
    assert by_group.view is not None and set(by_group.view["fields"]) == {"title", "summary"}
    assert by_star.view is not None and set(by_star.view["fields"]) == {"title"}


def test_node_rule_that_denies_by_visibility_is_not_overridden_by_group_rule() -> None:
    p = compile_policy(
        policy(
            rule("mou", "tech_offer", ["title"]),
            rule("th", "tech_offer", ["title"], visibility=("public",)),
        )
    )
    decision = evaluate(make(visibility="network"), aud("th", "mou"), p, NOW)
    assert (decision.code, decision.rule_index) == ("visibility_not_in_rule", 2)


def test_two_groups_with_rules_first_in_file_order_wins() -> None:
    rules = (rule("asean", "tech_offer", ["title"]), rule("mou", "tech_offer", ["summary"]))
    p = compile_policy(policy(*rules))
    q = compile_policy(policy(*reversed(rules)))
    for groups in (("mou", "asean"), ("asean", "mou")):
        view = evaluate(make(), aud("th", *groups), p, NOW).view
        assert view is not None and set(view["fields"]) == {"title"}
        view = evaluate(make(), aud("th", *groups), q, NOW).view
        assert view is not None and set(view["fields"]) == {"summary"}


def test_extra_groups_from_the_directory_count() -> None:
    p = compile_policy(policy(rule("asean", "expert", ["name"]), groups={"mou": ("th",)}))
    audience = audience_for("th", p, {"asean": ["th", "vn"], "other": ["cn"]}, member=False)
    assert audience == Audience("th", frozenset({"mou", "asean"}), member=False)
    assert evaluate(make("expert"), audience, p, NOW).code == "shared"
    assert evaluate(make("expert"), audience_for("th", p), p, NOW).code == "no_rule"


# -- listing visibility ---------------------------------------------------------------


def test_private_never_leaves_even_under_a_rule_naming_private() -> None:
    # parse_policy refuses 'private' in a rule; a hand-built policy cannot force it either
    p = compile_policy(policy(rule("*", "tech_offer", ["title"], visibility=("private", "public"))))
    decision = evaluate(make(visibility="private"), aud("th"), p, NOW)
    assert (decision.view, decision.code) == (None, "private")


def test_bilateral_only_to_share_with() -> None:
    p = compile_policy(policy(rule("*", "tech_offer", ["title"])))
    listing = make(visibility="bilateral", share_with=["cn", "la"])
    assert evaluate(listing, aud("cn"), p, NOW).code == "shared"
    assert evaluate(listing, aud("la", member=False), p, NOW).code == "shared"
    assert evaluate(listing, aud("th"), p, NOW).code == "not_in_share_with"


def test_bilateral_needs_the_rule_to_name_bilateral() -> None:
    p = compile_policy(
        policy(rule("cn", "tech_offer", ["title"], visibility=("public", "network")))
    )
    listing = make(visibility="bilateral", share_with=["cn"])
    decision = evaluate(listing, aud("cn"), p, NOW)
    assert (decision.code, decision.rule_index) == ("visibility_not_in_rule", 1)


def test_network_only_to_members() -> None:
    p = compile_policy(policy(rule("*", "tech_offer", ["title"])))
    listing = make(visibility="network")
    assert evaluate(listing, aud("th"), p, NOW).code == "shared"
    assert evaluate(listing, aud("xx", member=False), p, NOW).code == "not_member"


def test_public_reaches_non_members_the_policy_allows() -> None:
    p = compile_policy(policy(rule("*", "tech_offer", ["title"])))
    assert evaluate(make(), aud("xx", member=False), p, NOW).code == "shared"


def test_rule_visibility_list_must_include_the_listing_visibility() -> None:
    p = compile_policy(policy(rule("*", "tech_offer", ["title"], visibility=("public",))))
    decision = evaluate(make(visibility="network"), aud("th"), p, NOW)
    assert (decision.view, decision.code) == (None, "visibility_not_in_rule")
    assert "public" in decision.reason and "network" in decision.reason


# -- time and withdrawal --------------------------------------------------------------


def test_expired_at_or_before_now() -> None:
    p = compile_policy(policy(rule("*", "tech_offer", ["title"])))
    listing = make(expires=NOW)
    assert evaluate(listing, aud("th"), p, NOW).code == "expired"
    assert evaluate(listing, aud("th"), p, NOW + DAY).code == "expired"
    assert evaluate(listing, aud("th"), p, NOW - 1).code == "shared"


def test_withdrawn_never() -> None:
    p = compile_policy(policy(rule("*", "tech_offer", ["title"])))
    decision = evaluate(make(), aud("th"), p, NOW, withdrawn=True)
    assert (decision.view, decision.code) == (None, "withdrawn")


def test_every_reason_code_is_reachable() -> None:
    p = compile_policy(
        policy(rule("th", "tech_offer", ["title"], visibility=("public", "bilateral")))
    )
    cases = {
        "shared": (make(), aud("th"), {}),
        "no_rule": (make(), aud("vn"), {}),
        "private": (make(visibility="private"), aud("th"), {}),
        "not_in_share_with": (make(visibility="bilateral", share_with=["la"]), aud("th"), {}),
        "not_member": (make(visibility="network"), aud("th", member=False), {}),
        "visibility_not_in_rule": (make(visibility="network"), aud("th"), {}),
        "expired": (make(expires=NOW - 1), aud("th"), {}),
        "withdrawn": (make(), aud("th"), {"withdrawn": True}),
    }
    assert set(cases) == set(REASON_CODES)
    for code, (listing, audience, kwargs) in cases.items():
        assert evaluate(listing, audience, p, NOW, **kwargs).code == code


# -- the view ---------------------------------------------------------------------------


def test_view_is_the_summary_listing_member() -> None:
    p = compile_policy(policy(rule("*", "tech_offer", ["title", "trl"])))
    listing = make()
    view = evaluate(listing, aud("th"), p, NOW).view
    assert view is not None
    assert set(view) == {"id", "category", "version", "updated", "expires", "fields", "rights"}
    assert (view["id"], view["category"], view["version"]) == ("vn-off-0100", "tech_offer", 2)
    assert (view["updated"], view["expires"]) == (listing["updated"], listing["expires"])
    assert view["fields"] == {"title": listing["title"], "trl": 7}
    SummaryListing.model_validate(view)


def test_only_named_fields_and_absent_ones_stay_absent() -> None:
    fields = ["title", "need", "budget_range", "deadline", "trl_min", "contact.phone"]
    p = compile_policy(policy(rule("*", "tech_request", fields)))
    listing = make("tech_request", contact={"email": "x@y.example"})
    view = evaluate(listing, aud("th"), p, NOW).view
    assert view is not None
    assert view["fields"] == {"title": listing["title"], "need": listing["need"], "trl_min": 6}


def test_nested_paths_build_nested_objects() -> None:
    p = compile_policy(policy(rule("*", "tech_offer", ["organization.type", "contact.email"])))
    view = evaluate(make(), aud("th"), p, NOW).view
    assert view is not None
    assert view["fields"] == {
        "organization": {"type": "university"},
        "contact": {"email": "an@mekong-uni.example"},
    }


def test_whole_object_and_whole_wins_over_part() -> None:
    p = compile_policy(
        policy(rule("*", "tech_offer", ["organization.type", "organization", "contact"]))
    )
    view = evaluate(make(), aud("th"), p, NOW).view
    assert view is not None
    assert view["fields"]["organization"] == {
        "name": "Mekong University of Technology",
        "type": "university",
    }
    assert view["fields"]["contact"] == make()["contact"]


def test_list_of_objects_part() -> None:
    p = compile_policy(policy(rule("*", "agreement", ["parties.node", "kind"])))
    view = evaluate(make("agreement"), aud("th"), p, NOW).view
    assert view is not None
    assert view["fields"] == {"parties": [{"node": "vn"}, {"node": "cn"}], "kind": "licensing"}


def test_view_does_not_share_objects_with_the_listing() -> None:
    p = compile_policy(policy(rule("*", "tech_offer", ["title", "keywords", "organization"])))
    listing = make()
    before = json.dumps(listing, sort_keys=True)
    view = evaluate(listing, aud("th"), p, NOW).view
    assert view is not None
    view["fields"]["title"]["en"] = "changed"
    view["fields"]["keywords"].append("changed")
    view["fields"]["organization"]["type"] = "changed"
    view["rights"]["attribution"].append("changed")
    assert json.dumps(listing, sort_keys=True) == before


def test_deterministic_and_independent_of_key_order() -> None:
    p = compile_policy(
        policy(rule("*", "tech_offer", ["title", "organization", "contact", "summary"]))
    )
    listing = make(consent=False)
    shuffled = {key: listing[key] for key in reversed(list(listing))}
    shuffled["organization"] = dict(reversed(list(listing["organization"].items())))
    first = evaluate(listing, aud("th"), p, NOW)
    assert evaluate(listing, aud("th"), p, NOW) == first
    again = evaluate(shuffled, aud("th"), p, NOW)
    assert again == first
    assert json.dumps(again.view, sort_keys=True) == json.dumps(first.view, sort_keys=True)


def test_uncompiled_policy_gives_the_same_decision() -> None:
    p = policy(rule("*", "tech_offer", ["title"]))
    assert evaluate(make(), aud("th"), p, NOW) == evaluate(
        make(), aud("th"), compile_policy(p), NOW
    )


def test_parsed_design_example() -> None:
    text = """\
groups:
  mou: [cn, th, la, kh, mm, vn, bn, id]
  no_mou: [my, ph]
rules:
  - audience: no_mou
    category: tech_offer
    visibility: [public]
    fields: [title, summary, keywords]
"""
    p = compile_policy(parse_policy(text))
    view = evaluate(make(), audience_for("my", p), p, NOW).view
    assert view is not None and set(view["fields"]) == {"title", "summary", "keywords"}
    assert evaluate(make(), audience_for("th", p), p, NOW).code == "no_rule"


@pytest.mark.parametrize(
    "category", ["tech_offer", "tech_request", "expert", "organization", "event", "agreement"]
)
def test_contact_never_without_a_rule_naming_it(category: str) -> None:
    from protocol.listing import shareable_fields

    fields = [f for f in shareable_fields(category) if not f.startswith("contact")]
    p = compile_policy(policy(rule("*", category, fields)))
    view = evaluate(make(category), aud("th"), p, NOW).view
    assert view is not None
    assert "contact" not in view["fields"]
    text = json.dumps(view["fields"])
    assert "an@mekong-uni.example" not in text and "+84" not in text
