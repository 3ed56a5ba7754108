"""What an owner's feed sends is what ``protocol.objects`` describes, field for field.

The feed builds its summaries, retractions and pages as plain dicts (``*_body`` in
``protocol.objects``), not through their models, because it builds one per item per
reader. So here: each body has exactly its model's fields, and everything a real node's
feed produces (summaries with a public view and a relay rule, retractions, the page)
validates against its model, which refuses one field more anywhere it describes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

from protocol.authority import WHO_MAY_SAY_WHAT
from protocol.objects import (
    FeedPage,
    ListingSummary,
    PolicyRef,
    PublicView,
    Retraction,
    SummaryListing,
    ViewRights,
    feed_page_head,
    listing_summary_body,
    policy_ref_body,
    public_view_body,
    retraction_body,
)
from tests.federation.network import NodeFactory, load_records
from tests.node.sample import sample_records

RIGHTS = {"ip_owner": ["an organisation"], "attribution": [], "name_logo_consent": False}
BODIES: list[tuple[Callable[..., dict[str, Any]], dict[str, Any], type[pydantic.BaseModel]]] = [
    (
        listing_summary_body,
        {"issuer": "th", "audience": "cn", "ts": 1, "listing": {}, "policy": {}},
        ListingSummary,
    ),
    (
        retraction_body,
        {
            "issuer": "th",
            "audience": "cn",
            "ts": 1,
            "listing_id": "th-off-0001",
            "category": "tech_offer",
            "version": 1,
            "reason": "withdrawn",
        },
        Retraction,
    ),
    (
        feed_page_head,
        {
            "issuer": "th",
            "audience": "cn",
            "ts": 1,
            "after": None,
            "next": "c1",
            "head": 1,
            "position": 1,
            "more": False,
        },
        FeedPage,
    ),
    (policy_ref_body, {"version": 1, "relay": {"to": ["*"], "fields": ["title"]}}, PolicyRef),
    (public_view_body, {"fields": {}, "rights": RIGHTS}, PublicView),
]
# What the signature adds, and the page's items (serialised by the feed itself).
ADDED_LATER = {"signatures", "items"}


def _rule(audience: str, category: str, fields: str, extra: str = "") -> str:
    return (
        f"  - audience: '{audience}'\n    category: {category}\n"
        f"    visibility: [public, network]\n    fields: [{fields}]\n{extra}"
    )


RELAY = "    relay: {to: ['*'], fields: [title]}\n"
POLICY = (
    "groups: {}\nrules:\n"
    + _rule("*", "tech_offer", "title, summary, keywords")
    + _rule("cn", "tech_offer", "title, summary, organization, trl", RELAY)
    + _rule("cn", "tech_request", "title, summary, keywords, organization", RELAY)
    + _rule("cn", "organization", "name, summary")
    + _rule("vn", "tech_offer", "title")
)
VN_ORGANIZATIONS = _rule("vn", "organization", "name, summary")


@pytest.mark.parametrize(
    ("body", "kwargs", "model"), BODIES, ids=lambda x: getattr(x, "__name__", "")
)
def test_each_body_has_exactly_its_models_fields(
    body: Callable[..., dict[str, Any]], kwargs: dict[str, Any], model: type[pydantic.BaseModel]
) -> None:
    assert set(body(**kwargs)) == set(model.model_fields) - ADDED_LATER


def test_a_policy_ref_without_relay_leaves_it_out() -> None:
    assert policy_ref_body(3) == policy_ref_body(3, None) == {"version": 3}
    assert PolicyRef.model_validate(policy_ref_body(3)).relay is None


def _model_paths(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every object inside ``obj`` that a model describes (not the free maps)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(obj, dict):
        out.append(path)
        for key, value in obj.items():
            if key not in ("fields", "signatures"):
                out.extend(_model_paths(value, (*path, key)))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out.extend(_model_paths(value, (*path, i)))
    return out


def assert_fits_and_refuses_more(obj: dict[str, Any]) -> None:
    model = WHO_MAY_SAY_WHAT[obj["type"]].model
    model.model_validate(obj)
    for path in _model_paths(obj):
        bad = copy.deepcopy(obj)
        target = bad
        for step in path:
            target = target[step]
        target["surplus"] = 1
        with pytest.raises(pydantic.ValidationError, match="surplus"):
            model.model_validate(bad)


async def test_every_object_a_real_feed_produces_fits_its_model(
    node_factory: NodeFactory,
) -> None:
    node = await node_factory("th", hub_id="cn")
    rt = node.runtime
    rt.policy.apply(POLICY + VN_ORGANIZATIONS, "test")
    load_records(node, sample_records("th"))
    seen: dict[str, int] = {}
    hub_page = rt.feed.page("cn", None, 1000)
    vn_page = rt.feed.page("vn", None, 1000)
    for page in (hub_page, vn_page):
        for item in page["items"]:
            assert_fits_and_refuses_more(item)
            seen[item["type"]] = seen.get(item["type"], 0) + 1
        head = {k: v for k, v in page.items() if k != "items"}
        assert_fits_and_refuses_more({**head, "items": []})
    listings = [i["listing"] for i in hub_page["items"]]
    # The hub's summaries carry public views and relay rules; vn's carry neither.
    assert any("public_view" in v for v in listings)
    assert any("relay" in i["policy"] for i in hub_page["items"])
    assert all("public_view" not in i["listing"] for i in vn_page["items"])
    # Names as the policy lets them out: some owners by name, some as words only.
    owners = [o for v in listings for o in v["rights"]["ip_owner"]]
    assert any(o.startswith("a ") or o.startswith("an ") for o in owners)
    assert any(not (o.startswith("a ") or o.startswith("an ")) for o in owners)
    # Retractions: a withdrawn listing, and one the policy no longer shares with vn.
    offers = sorted(i["listing"]["id"] for i in vn_page["items"] if "-off-" in i["listing"]["id"])
    rt.listings.withdraw(offers[0])
    rt.policy.apply(POLICY, "test")  # organizations no longer shared with vn
    later = rt.feed.page("vn", vn_page["next"], 1000)
    reasons = {i["reason"] for i in later["items"] if i["type"] == "retraction"}
    assert reasons == {"withdrawn", "not_shared"}, later["items"]
    for item in later["items"]:
        assert_fits_and_refuses_more(item)
    assert seen["listing"] > 10


def test_view_rights_are_closed() -> None:
    """A view's rights block is what the owner's policy builds, and nothing else: the
    ``Rights | dict`` it replaced took any member."""
    ViewRights.model_validate(RIGHTS)
    ViewRights.model_validate({**RIGHTS, "attribution": "declined", "ip_owner": []})
    view = {
        "id": "th-off-0001",
        "category": "tech_offer",
        "version": 1,
        "updated": 1,
        "expires": 2,
        "fields": {},
        "rights": RIGHTS,
    }
    SummaryListing.model_validate(view)
    bad: dict[str, Any]
    for bad in (
        {**RIGHTS, "licence": "MIT"},
        {**RIGHTS, "attribution": "maybe"},
        {**RIGHTS, "ip_owner": "one"},
        {"ip_owner": []},
        {},
    ):
        with pytest.raises(pydantic.ValidationError):
            SummaryListing.model_validate({**view, "rights": bad})
