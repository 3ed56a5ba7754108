"""explain() shows the rule and the reasons; relay_view() applies the owner's relay rule."""

from __future__ import annotations

from typing import Any

from policies import (
    Relay,
    audience_for,
    compile_policy,
    explain,
    relay_view,
)
from policies.evaluate import evaluate

from .conftest import NOW_MS
from .helpers import NOW, aud, make, policy, rule


def test_explain_node_match_and_passed_over_rules() -> None:
    p = compile_policy(
        policy(
            rule("*", "tech_offer", ["title"]),
            rule("mou", "tech_offer", ["title", "summary"]),
            rule("th", "tech_offer", ["title", "trl"]),
            groups={"mou": ("th",)},
        )
    )
    result = explain(make(), audience_for("th", p), p, NOW)
    assert result.decision == evaluate(make(), audience_for("th", p), p, NOW)
    assert (result.matched, result.matched_key, result.rule_index) == ("node", "th", 3)
    assert result.rule == {
        "audience": "th",
        "category": "tech_offer",
        "visibility": ["public", "network", "bilateral"],
        "fields": ["title", "trl"],
    }
    text = result.text()
    assert "rule 3 applies, by node id th" in text
    assert "more specific than rule 2 (mou), rule 1 (*)" in text
    assert "shared: fields title, trl" in text


def test_explain_says_first_group_rule_in_file_order_wins() -> None:
    p = compile_policy(
        policy(rule("asean", "expert", ["name"]), rule("mou", "expert", ["name", "summary"]))
    )
    result = explain(make("expert"), aud("th", "mou", "asean"), p, NOW)
    assert (result.matched, result.matched_key, result.rule_index) == ("group", "asean", 1)
    assert "first in file order wins" in result.text()
    assert "rule 2 (group mou)" in result.text()


def test_explain_star_and_no_rule() -> None:
    p = compile_policy(policy(rule("*", "event", ["name"])))
    star = explain(make("event"), aud("sg"), p, NOW)
    assert (star.matched, star.matched_key) == ("*", "*")
    none = explain(make(), aud("sg"), p, NOW)
    assert (none.matched, none.rule, none.decision.code) == (None, None, "no_rule")
    assert "deny by default" in none.text()


def test_explain_a_refusal_still_names_the_rule_that_would_apply() -> None:
    p = compile_policy(policy(rule("*", "tech_offer", ["title"])))
    result = explain(make(visibility="private"), aud("th"), p, NOW)
    assert result.decision.code == "private"
    assert result.rule_index == 1
    assert result.lines[-1].startswith("not shared (private)")


def test_explain_names_absent_fields_names_and_attribution() -> None:
    p = compile_policy(
        policy(rule("*", "tech_request", ["organization", "budget_range", "summary"]))
    )
    listing = make("tech_request", consent=False, attribution="declined")
    text = explain(listing, aud("th"), p, NOW).text()
    assert "absent in the listing: budget_range" in text
    assert "name field organization.name: anonymised (no name/logo consent)" in text
    assert "rights.ip_owner as descriptors: a university in Vietnam" in text
    assert "attribution declined" in text


def test_explain_on_real_record(by_id: dict[str, dict[str, Any]], default_compiled: Any) -> None:
    listing = by_id["cn-off-0001"]  # network offer
    result = explain(listing, audience_for("my", default_compiled), default_compiled, NOW_MS)
    assert result.decision.code == "visibility_not_in_rule"
    assert (result.matched, result.matched_key) == ("group", "no_mou")
    assert "rule 6 shares only public listings, not network" in result.text()


def test_relay_view() -> None:
    fields = {
        "title": {"en": "Gasifier"},
        "keywords": ["rice husk"],
        "organization": {"type": "university", "name": "a university in Vietnam"},
        "trl": 7,
        "summary": "text",
    }
    relay = Relay(("mou",), ("title", "trl", "organization.type", "ipc"))
    assert relay_view(fields, relay, aud("th", "mou")) == {
        "title": {"en": "Gasifier"},
        "trl": 7,
        "organization": {"type": "university"},
    }
    assert relay_view(fields, relay, aud("my", "no_mou")) is None
    assert relay_view(fields, None, aud("th", "mou")) is None
    assert relay_view(fields, Relay(("my",), ("keywords",)), aud("my")) == {
        "keywords": ["rice husk"]
    }
    assert relay_view(fields, Relay(("*",), ("ipc",)), aud("xx")) == {}


def test_relay_of_a_real_view_to_mou(
    by_id: dict[str, dict[str, Any]], default_compiled: Any
) -> None:
    listing = by_id["th-off-0003"]
    cn = audience_for("cn", default_compiled)
    decision = evaluate(listing, cn, default_compiled, NOW_MS)
    assert decision.view is not None and decision.rule_index == 1
    relay = default_compiled.rules[0].rule.relay
    out = relay_view(decision.view["fields"], relay, audience_for("vn", default_compiled))
    assert out == {
        "title": decision.view["fields"]["title"],
        "keywords": listing["keywords"],
        "ipc": listing["ipc"],
        "trl": listing["trl"],
    }
    assert relay_view(decision.view["fields"], relay, audience_for("ph", default_compiled)) is None
