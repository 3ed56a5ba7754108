"""Names need a rule and consent; without consent they become descriptors (DESIGN 1, 7)."""

from __future__ import annotations

import json
from typing import Any

from policies import compile_policy
from policies.evaluate import evaluate
from policies.names import fold, org_words, redact

from .helpers import NOW, aud, make, policy, rule


def view_of(listing: dict[str, Any], fields: list[str], node: str = "th") -> dict[str, Any]:
    p = compile_policy(policy(rule("*", listing["category"], fields)))
    view = evaluate(listing, aud(node), p, NOW).view
    assert view is not None
    return view


def test_org_name_with_consent_and_rule() -> None:
    view = view_of(make(consent=True), ["organization.name"])
    assert view["fields"]["organization"] == {"name": "Mekong University of Technology"}
    assert view["rights"]["ip_owner"] == ["Mekong University of Technology"]


def test_org_name_without_consent_is_a_descriptor() -> None:
    view = view_of(make(consent=False), ["organization"])
    assert view["fields"]["organization"] == {
        "name": "a university in Vietnam",
        "type": "university",
    }
    assert view["rights"] == {
        "ip_owner": ["a university in Vietnam"],
        "attribution": [],
        "name_logo_consent": False,
    }
    assert "Mekong University" not in json.dumps(view)


def test_consent_alone_does_not_release_names_the_rule_does_not_name() -> None:
    view = view_of(make(consent=True), ["title", "organization.type"])
    assert view["fields"]["organization"] == {"type": "university"}
    assert view["rights"]["ip_owner"] == ["a university in Vietnam"]
    assert "Mekong University" not in json.dumps(view)


def test_descriptor_words() -> None:
    assert org_words("research_institute", "TH") == "a research institute in Thailand"
    assert org_words("enterprise", "PH") == "an enterprise in the Philippines"
    assert org_words("government", "CN") == "a government body in China"
    assert org_words(None, "VN") == "an organisation in Vietnam"
    assert org_words("university", "FR") == "a university"


def test_expert_name_and_affiliation() -> None:
    fields = ["name", "affiliation", "summary", "job_title"]
    shown = view_of(make("expert", consent=True), fields)
    assert shown["fields"]["name"] == "Pham Van An"
    assert shown["fields"]["affiliation"] == "Mekong University of Technology"
    assert shown["rights"]["ip_owner"] == ["Mekong University of Technology"]
    assert shown["rights"]["attribution"] == ["Pham Van An", "Le Thi Hoa"]
    hidden = view_of(make("expert", consent=False), fields)
    assert hidden["fields"]["name"] == "an expert in Vietnam"
    assert hidden["fields"]["affiliation"] == "an organisation in Vietnam"
    assert hidden["rights"]["ip_owner"] == ["an organisation in Vietnam"]
    # the expert's own name also leaves the attribution; co-authors stay named
    assert hidden["rights"]["attribution"] == ["an expert in Vietnam", "Le Thi Hoa"]


def test_expert_attribution_needs_the_name_in_the_rule() -> None:
    view = view_of(make("expert", consent=True), ["summary"])
    assert view["rights"]["attribution"] == ["an expert in Vietnam", "Le Thi Hoa"]


def test_organization_listing_name() -> None:
    assert view_of(make("organization", consent=False), ["name", "type"])["fields"] == {
        "name": "a university in Vietnam",
        "type": "university",
    }
    assert view_of(make("organization", consent=True), ["name"])["fields"] == {
        "name": "Mekong University of Technology"
    }


def test_event_name_is_not_an_organisation_name_but_its_organizer_is() -> None:
    view = view_of(make("event", consent=False), ["name", "organization"])
    assert view["fields"]["name"] == "Biomass energy matchmaking"
    assert view["fields"]["organization"]["name"] == "a government body in Vietnam"


def test_agreement_parties() -> None:
    hidden = view_of(make("agreement", consent=False), ["parties"])
    assert hidden["fields"]["parties"] == [
        {"name": "an organisation in Vietnam", "node": "vn"},
        {"name": "an organisation in China", "node": "cn"},
    ]
    assert hidden["rights"]["ip_owner"] == ["an organisation in Vietnam"]
    shown = view_of(make("agreement", consent=True), ["parties.name"])
    assert shown["fields"]["parties"] == [
        {"name": "Mekong University of Technology"},
        {"name": "Anhui Biomass Co., Ltd."},
    ]


def test_joint_owners_stay_visible_as_several_descriptors() -> None:
    listing = make(consent=False, ip_owner=["Mekong University of Technology", "Saigon Gas JSC"])
    assert view_of(listing, ["title"])["rights"]["ip_owner"] == [
        "a university in Vietnam",
        "an organisation",
    ]
    listing = make(consent=True, ip_owner=["Mekong University of Technology", "Saigon Gas JSC"])
    assert view_of(listing, ["organization.name"])["rights"]["ip_owner"] == [
        "Mekong University of Technology",
        "Saigon Gas JSC",
    ]


def test_attribution_travels_with_the_summary_unless_declined() -> None:
    assert view_of(make(), ["summary"])["rights"]["attribution"] == ["Pham Van An", "Le Thi Hoa"]
    assert view_of(make(), ["title"])["rights"]["attribution"] == []
    assert view_of(make(attribution="declined"), ["summary"])["rights"]["attribution"] == "declined"
    assert view_of(make(attribution="declined"), ["title"])["rights"]["attribution"] == []


def test_real_records(by_id: dict[str, dict[str, Any]]) -> None:
    # vn-req-0010: public request of a Vietnamese enterprise without name/logo consent
    view = view_of(by_id["vn-req-0010"], ["title", "organization"])
    assert view["fields"]["organization"] == {
        "name": "an enterprise in Vietnam",
        "type": "enterprise",
    }
    # ph-off-0002: jointly owned across a border, with consent
    listing = by_id["ph-off-0002"]
    view = view_of(listing, ["organization.name", "summary"])
    assert view["rights"]["ip_owner"] == listing["rights"]["ip_owner"]
    assert view["rights"]["attribution"] == listing["rights"]["attribution"]
    view = view_of(listing, ["organization.type"])
    assert view["rights"]["ip_owner"] == [
        "a research institute in the Philippines",
        "an organisation",
    ]
    # th-exp-0003: expert without consent; her name appears nowhere, not even in attribution
    listing = by_id["th-exp-0003"]
    view = view_of(listing, ["name", "affiliation", "summary", "title"])
    text = json.dumps(view, ensure_ascii=False)
    assert listing["name"] not in text and listing["affiliation"] not in text
    assert view["rights"]["attribution"] == ["an expert in Thailand"]
    assert view["fields"]["title"] == {
        "en": "Assoc. Prof. Dr. [an expert in Thailand] - postharvest technology of tropical fruit"
    }
    # my-agr-0001: bilateral agreement without consent
    view = view_of(by_id["my-agr-0001"], ["parties", "kind", "summary"], "cn")
    assert [p["name"] for p in view["fields"]["parties"]] == [
        "an organisation in Malaysia",
        "an organisation in China",
    ]


def test_withheld_names_are_redacted_from_free_text() -> None:
    listing = make(
        "expert",
        consent=False,
        title={"en": "Prof. Pham Van An - gasification", "vi": "GS. Phạm Văn An - khí hóa"},
        summary="Pham Van An leads the Mekong University of Technology biomass group.",
    )
    view = view_of(listing, ["title", "summary", "job_title"])
    assert view["fields"]["title"] == {
        "en": "Prof. [an expert in Vietnam] - gasification",
        "vi": "GS. [an expert in Vietnam] - khí hóa",
    }
    assert view["fields"]["summary"] == (
        "[an expert in Vietnam] leads the [an organisation in Vietnam] biomass group."
    )
    # with consent and the name in the rule, the text stays as written
    shown = view_of(make("expert", consent=True, title=listing["title"]), ["title", "name"])
    assert shown["fields"]["title"] == listing["title"]


def test_accents_do_not_hide_a_name_and_unmatched_translations_are_dropped() -> None:
    listing = make(
        "expert",
        name="Nguyễn Thị Lan",
        consent=False,
        title={"en": "Assoc. Prof. Nguyen Thi Lan - aquatic products", "th": "ศาสตราจารย์ ลาน"},
    )
    view = view_of(listing, ["title"])
    assert view["fields"]["title"] == {
        "en": "Assoc. Prof. [an expert in Vietnam] - aquatic products"
    }
    assert fold("Trần Văn Hùng") == "Tran Van Hung"
    assert redact("Dr. Trần Văn Hùng, Tran Van Hung", {"Tran Van Hung": "x"}) == (
        "Dr. [x], [x]",
        True,
    )
    assert redact("nothing here", {"Tran Van Hung": "x"}) == ("nothing here", False)


def test_consented_org_name_not_named_by_the_rule_is_still_redacted() -> None:
    listing = make(consent=True, summary="Developed at Mekong University of Technology in 2024.")
    view = view_of(listing, ["summary"])
    assert view["fields"]["summary"] == "Developed at [a university in Vietnam] in 2024."
    view = view_of(listing, ["summary", "organization.name"])
    assert view["fields"]["summary"] == listing["summary"]
