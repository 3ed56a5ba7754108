"""Parsing and checking policy documents: every mistake is reported with its rule and key."""

from __future__ import annotations

import hashlib
import textwrap

import pytest

from policies import (
    DEFAULT_POLICY_YAML,
    Policy,
    PolicyError,
    PolicyIssue,
    Relay,
    Rule,
    default_policy_yaml,
    parse_policy,
    policy_digest,
    policy_from_data,
    policy_to_yaml,
)
from protocol.listing import shareable_fields

GROUPS = """\
groups:
  mou: [cn, th, la, kh, mm, vn, bn, id]
  no_mou: [my, ph]
"""


def doc(rules: str, groups: str = GROUPS) -> str:
    return groups + "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  ")


def issues_of(text: str, **kwargs: object) -> list[PolicyIssue]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, **kwargs)  # type: ignore[arg-type]
    assert caught.value.issues, "a PolicyError always carries issues"
    return caught.value.issues


def only_issue(text: str, **kwargs: object) -> PolicyIssue:
    issues = issues_of(text, **kwargs)
    assert len(issues) == 1, [str(i) for i in issues]
    return issues[0]


VALID_RULE = """\
- audience: cn
  category: tech_offer
  visibility: [public, network]
  fields: [title, summary]
"""


def test_design_example_parses() -> None:
    text = doc(
        """\
        - audience: cn                 # node id, group name, or "*"
          category: tech_offer
          visibility: [public, network]
          fields: [title, summary, keywords, ipc, isic, trl, stage, ipr_status,
                   partnership, target_countries, organization.type, expires]
          relay:                       # what the hub may pass on in match notices
            to: [mou]
            fields: [title, keywords, ipc, trl]
        - audience: no_mou
          category: tech_offer
          visibility: [public]
          fields: [title, summary, keywords]
        """
    )
    policy = parse_policy(text)
    assert policy.groups["no_mou"] == ("my", "ph")
    assert [r.audience for r in policy.rules] == ["cn", "no_mou"]
    assert policy.rules[0].relay == Relay(("mou",), ("title", "keywords", "ipc", "trl"))
    assert policy.rules[1].visibility == ("public",)


def test_unknown_field_message_names_rule_audience_category_and_key() -> None:
    text = doc(
        VALID_RULE
        + """\
- audience: th
  category: tech_offer
  visibility: [public]
  fields: [title]
- audience: no_mou
  category: tech_offer
  visibility: [public]
  fields: [title, contact.fax]
"""
    )
    issue = only_issue(text)
    assert (issue.rule, issue.key) == (3, "fields")
    assert str(issue) == (
        "rule 3 (audience no_mou, category tech_offer): key 'fields': "
        "unknown field 'contact.fax' for tech_offer"
    )


def test_field_valid_for_one_category_is_unknown_for_another() -> None:
    assert "trl" in shareable_fields("tech_offer")
    issue = only_issue(
        doc("- {audience: cn, category: tech_request, visibility: [public], fields: [trl]}\n")
    )
    assert (issue.rule, issue.key) == (1, "fields")
    assert "unknown field 'trl' for tech_request" in issue.message


def test_unknown_category() -> None:
    issue = only_issue(
        doc("- {audience: cn, category: patent, visibility: [public], fields: [title]}\n")
    )
    assert (issue.rule, issue.key) == (1, "category")
    assert "unknown category 'patent'" in str(issue)


@pytest.mark.parametrize("audience", ["MoU", "no-mou", "'1th'", "''"])
def test_unknown_group_not_shaped_like_a_node_id(audience: str) -> None:
    issue = only_issue(
        doc(f"- {{audience: {audience}, category: expert, visibility: [public], fields: [name]}}\n")
    )
    assert (issue.rule, issue.key) == (1, "audience")
    assert "unknown group" in issue.message


def test_node_id_audience_accepted_without_known_nodes() -> None:
    policy = parse_policy(
        doc("- {audience: sg, category: expert, visibility: [public], fields: [name]}\n")
    )
    assert policy.rules[0].audience == "sg"


def test_unknown_audience_with_known_nodes() -> None:
    text = doc("- {audience: mou_all, category: expert, visibility: [public], fields: [name]}\n")
    issue = only_issue(text, known_nodes={"cn", "th"})
    assert (issue.rule, issue.key) == (1, "audience")
    assert "unknown audience 'mou_all'" in issue.message
    # a node listed in one of the policy's groups, or a known group, is fine
    parse_policy(doc(VALID_RULE.replace("cn", "kh")), known_nodes={"cn"})
    parse_policy(text, known_nodes={"cn"}, known_groups={"mou_all"})


def test_relay_to_unknown_audience() -> None:
    text = doc(
        VALID_RULE
        + """\
  relay:
    to: [MOU]
    fields: [title]
"""
    )
    issue = only_issue(text)
    assert (issue.rule, issue.key) == (1, "relay.to")
    assert "unknown group 'MOU'" in issue.message


def test_relay_field_must_be_shared_by_the_rule() -> None:
    issue = only_issue(doc(VALID_RULE + "  relay: {to: [mou], fields: [title, trl]}\n"))
    assert (issue.rule, issue.key) == (1, "relay.fields")
    assert "'trl'" in issue.message


def test_relay_may_name_a_part_of_a_shared_object() -> None:
    text = doc(
        "- audience: cn\n  category: tech_offer\n  visibility: [public]\n"
        "  fields: [title, organization]\n  relay: {to: ['*'], fields: [organization.type]}\n"
    )
    assert parse_policy(text).rules[0].relay == Relay(("*",), ("organization.type",))


@pytest.mark.parametrize(
    ("visibility", "expected"),
    [("[public, secret]", "unknown visibility 'secret'"), ("[private]", "never leave")],
)
def test_bad_visibility(visibility: str, expected: str) -> None:
    issue = only_issue(
        doc(f"- {{audience: cn, category: expert, visibility: {visibility}, fields: [name]}}\n")
    )
    assert (issue.rule, issue.key) == (1, "visibility")
    assert expected in issue.message


def test_duplicate_rule_for_audience_and_category() -> None:
    issue = only_issue(doc(VALID_RULE + VALID_RULE.replace("[title, summary]", "[title]")))
    assert (issue.rule, issue.key) == (2, "audience")
    assert "rule 1 already covers audience cn" in issue.message


def test_unknown_keys_at_every_level() -> None:
    text = (
        doc(
            VALID_RULE.replace("  fields:", "  feilds: [title]\n  fields:")
            + "  relay: {to: [mou], fields: [title], via: hub}\n"
        )
        + "version: 3\n"
    )
    found = {(i.rule, i.key) for i in issues_of(text)}
    assert found == {(None, "version"), (1, "feilds"), (1, "relay.via")}


@pytest.mark.parametrize(
    ("rule", "key", "expected"),
    [
        (
            "{audience: cn, category: expert, visibility: public, fields: [name]}",
            "visibility",
            "list",
        ),
        ("{audience: cn, category: expert, visibility: [public], fields: name}", "fields", "list"),
        (
            "{audience: cn, category: expert, visibility: [public], fields: []}",
            "fields",
            "at least",
        ),
        ("{audience: cn, category: expert, visibility: [public], fields: [1]}", "fields", "number"),
        (
            "{audience: no, category: expert, visibility: [public], fields: [name]}",
            "audience",
            "quote",
        ),
        (
            "{audience: cn, category: [expert], visibility: [public], fields: [name]}",
            "category",
            "list",
        ),
        (
            "{audience: cn, category: expert, visibility: [public], fields: [name, name]}",
            "fields",
            "twice",
        ),
        (
            "{audience: cn, category: expert, visibility: [public], fields: [name], relay: [mou]}",
            "relay",
            "mapping",
        ),
        ("just text", None, "mapping"),
    ],
)
def test_wrong_types(rule: str, key: str | None, expected: str) -> None:
    issue = only_issue(doc(f"- {rule}\n"))
    assert (issue.rule, issue.key) == (1, key)
    assert expected in issue.message


@pytest.mark.parametrize(
    ("groups", "key", "expected"),
    [
        ("groups: [mou]\n", "groups", "mapping"),
        ('groups:\n  "*": [cn]\n', "groups.*", "'*'"),
        ('groups:\n  "all*": [cn]\n', "groups.all*", "'*'"),
        ("groups:\n  Mou: [cn]\n", "groups.Mou", "must match"),
        ("groups:\n  mou: cn\n", "groups.mou", "list"),
        ("groups:\n  mou: [cn, CN]\n", "groups.mou", "not a node id"),
        ("groups:\n  mou: [cn, th]\n  th: [la]\n", "groups.th", "both a group and a node id"),
    ],
)
def test_bad_groups(groups: str, key: str, expected: str) -> None:
    issue = only_issue(groups + "rules: []\n")
    assert (issue.rule, issue.key) == (None, key)
    assert expected in issue.message


def test_rules_must_be_a_list_and_present() -> None:
    assert only_issue("rules: {audience: cn}\n").key == "rules"
    assert "missing" in only_issue(GROUPS).message
    assert "empty" in only_issue("").message
    assert "mapping" in only_issue("- rules\n").message


def test_duplicate_yaml_key_is_an_error_not_last_wins() -> None:
    text = doc(VALID_RULE.replace("  fields:", "  fields: [contact]\n  fields:"))
    issue = only_issue(text)
    assert issue.key == "fields"
    assert "duplicate key at line" in issue.message


def test_yaml_syntax_error_hints_at_quoting_star() -> None:
    issue = only_issue(
        doc("- {audience: *, category: expert, visibility: [public], fields: [name]}\n")
    )
    assert issue.rule is None
    assert "not valid YAML" in issue.message and "quotes" in issue.message


def test_every_problem_is_reported_at_once() -> None:
    text = doc(
        """\
        - {audience: cn, category: patent, visibility: [public], fields: [title]}
        - {audience: th, category: expert, visibility: [secret], fields: [name]}
        - {audience: la, category: expert, visibility: [public], fields: [contact.fax]}
        """
    )
    issues = issues_of(text)
    assert [(i.rule, i.key) for i in issues] == [(1, "category"), (2, "visibility"), (3, "fields")]
    error = PolicyError(issues)
    assert isinstance(error, ValueError)
    assert str(error).splitlines() == [str(i) for i in issues]


def test_policy_from_data_checks_json_like_data() -> None:
    data = {
        "rules": [
            {"audience": "*", "category": "event", "visibility": ["public"], "fields": ["name"]}
        ]
    }
    assert policy_from_data(data).rules[0] == Rule("*", "event", ("public",), ("name",))
    with pytest.raises(PolicyError):
        policy_from_data({"rules": [{"audience": "*"}]})


def test_roundtrip_through_yaml_including_star_and_wrapping() -> None:
    policy = Policy(
        groups={"mou": ("cn", "th"), "no_mou": ("my",)},
        rules=(
            Rule("*", "event", ("public",), ("title", "name", "city")),
            Rule(
                "th",
                "tech_offer",
                ("bilateral", "network"),
                shareable_fields("tech_offer"),
                Relay(("mou", "*"), ("title",)),
            ),
        ),
    )
    text = policy_to_yaml(policy)
    assert 'audience: "*"' in text
    assert all(len(line) <= 100 for line in text.splitlines())
    assert parse_policy(text) == policy
    assert policy_to_yaml(parse_policy(text)) == text
    assert parse_policy(policy_to_yaml(Policy())) == Policy()


def test_digest_is_sha256_of_the_exact_text() -> None:
    text = default_policy_yaml()
    assert policy_digest(text) == hashlib.sha256(text.encode()).hexdigest()
    assert policy_digest(text + "\n") != policy_digest(text)


def test_default_policy() -> None:
    assert DEFAULT_POLICY_YAML == default_policy_yaml("cn")
    policy = parse_policy(DEFAULT_POLICY_YAML)
    assert policy.groups == {
        "mou": ("cn", "th", "la", "kh", "mm", "vn", "bn", "id"),
        "no_mou": ("my", "ph"),
    }
    by = {(r.audience, r.category): r for r in policy.rules}
    assert set(by) == {
        ("cn", "tech_offer"),
        ("cn", "tech_request"),
        ("cn", "expert"),
        ("mou", "tech_offer"),
        ("mou", "tech_request"),
        ("no_mou", "tech_offer"),
        ("no_mou", "tech_request"),
    }
    for rule in policy.rules:
        assert not any(f.startswith("contact") for f in rule.fields)
        assert "organization.name" not in rule.fields and "organization" not in rule.fields
    assert by[("no_mou", "tech_offer")].visibility == ("public",)
    assert by[("no_mou", "tech_request")].fields == ("title", "summary", "keywords")
    assert by[("mou", "tech_offer")].visibility == ("public", "network")
    assert by[("cn", "expert")].visibility == ("public", "network")
    assert {
        "trl",
        "stage",
        "ipr_status",
        "target_countries",
        "organization.type",
        "country",
    } <= set(by[("mou", "tech_offer")].fields)
    assert {"need", "trl_min", "budget_range", "deadline"} <= set(
        by[("mou", "tech_request")].fields
    )
    relay = by[("cn", "tech_offer")].relay
    assert relay == Relay(("mou",), ("title", "keywords", "ipc", "trl"))


def test_default_policy_for_another_hub_id() -> None:
    policy = parse_policy(default_policy_yaml("hub"))
    assert {r.audience for r in policy.rules} == {"hub", "mou", "no_mou"}
    with pytest.raises(ValueError, match="not a node id"):
        default_policy_yaml("Hub!")
