"""Every signed object type has one frozen, ``extra="forbid"`` model, and one row in the
table of who may say what (``protocol.authority``), the same as in
docs/protocol-notes.md. Each type round-trips: signed, sent as canonical bytes, parsed
and validated, it is the object that was built; an unknown field anywhere is refused."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pydantic
import pytest

from protocol.authority import (
    FEED_ITEM_TYPES,
    HUB_ONLY_TYPES,
    WHO_MAY_SAY_WHAT,
    Channel,
    Issuer,
)
from protocol.canonical import canonical_bytes
from protocol.hub_objects import CustodyReceipt, MatchNotice, build
from protocol.keys import KeyStore, NodeKey
from protocol.signing import sign_object, verify_object
from sync.verify import PageError, check_item
from tests.paths import PROJECT_ROOT

TS = 1_767_225_600_000
KEYS = {
    n: KeyStore.generate(0, key_id="1", seed=bytes([i]) * 32)
    for i, n in enumerate(("cn", "th", "vn"), start=1)
}
B64 = KEYS["cn"].verify_keys()["ed25519:1"].b64
RIGHTS = {"ip_owner": ["Mahidol University"], "attribution": "declined", "name_logo_consent": True}


def head(kind: str, issuer: str, **more: Any) -> dict[str, Any]:
    return {"type": kind, "v": 1, "issuer": issuer, "ts": TS, **more}


EOI = head(
    "eoi",
    "vn",
    audience="cn",
    id="vn-eoi-3f9a12c0b7d1",
    listing={"owner": "th", "id": "th-off-0001"},
    message="Our cooperative would like to test the dryer this season.",
)
REPLY = head(
    "eoi_reply",
    "th",
    audience="cn",
    eoi_id="vn-eoi-3f9a12c0b7d1",
    decision="accepted",
    contact={"person": "Dr. Somchai", "email": "tto@mahidol.example"},
)
SAMPLES: dict[str, dict[str, Any]] = {
    "node": head(
        "node",
        "cn",
        node_id="cn",
        name="China-ASEAN Technology Transfer Center",
        country="CN",
        base_url="https://cn.cattc.example",
        protocols=["cattc/1"],
        verify_keys={"ed25519:2": {"key": B64, "valid_until": None}},
        old_verify_keys={"ed25519:1": {"key": B64, "expired_at": TS - 1}},
        key_transitions=[],
    ),
    "key_transition": head(
        "key_transition", "cn", old="ed25519:1", new={"name": "ed25519:2", "key": B64}
    ),
    "directory": head(
        "directory",
        "cn",
        version=7,
        members=[
            {
                "node_id": "th",
                "country": "TH",
                "name": "Thailand",
                "base_url": "https://th.cattc.example",
                "keys": {"ed25519:1": {"key": B64, "valid_until": None, "expired_at": TS}},
                "groups": ["mou"],
                "status": "active",
            },
            {
                "node_id": "vn",
                "country": "VN",
                "name": "Vietnam",
                "base_url": "https://vn.cattc.example",
                "keys": {"ed25519:1": {"key": B64}},
                "groups": [],
                "status": "suspended",
            },
        ],
    ),
    "feed_page": head(
        "feed_page",
        "th",
        audience="cn",
        after=None,
        next="c1",
        head=4,
        position=4,
        more=False,
        items=[],
    ),
    "listing": head(
        "listing",
        "th",
        audience="cn",
        listing={
            "id": "th-off-0001",
            "category": "tech_offer",
            "version": 2,
            "updated": TS,
            "expires": TS + 1,
            "fields": {"title": {"en": "Solar cassava dryer"}, "trl": 6},
            "rights": RIGHTS,
        },
        policy={"version": 3, "relay": {"to": ["mou"], "fields": ["title"]}},
    ),
    "retraction": head(
        "retraction",
        "th",
        audience="cn",
        listing_id="th-off-0001",
        category="tech_offer",
        version=3,
        reason="withdrawn",
    ),
    "custody_receipt": head(
        "custody_receipt",
        "cn",
        audience="th",
        position=12,
        held=[{"listing_id": "th-off-0001", "version": 2, "sha256": "ab" * 32}],
        purged=["th-off-0002"],
        rejected=0,
    ),
    "custody": head(
        "custody",
        "cn",
        audience="th",
        entries=[{"listing_id": "th-off-0001", "version": 2, "sha256": "cd" * 32}],
    ),
    "match_notice": head(
        "match_notice",
        "cn",
        audience="vn",
        own_listing={"id": "vn-req-0001", "role": "request"},
        counterpart={
            "owner": "th",
            "listing_id": "th-off-0001",
            "kind": "offer",
            "descriptor": "a listing held by the center of Thailand",
            "fields": {"title": {"en": "Solar cassava dryer"}},
        },
        score=0.5,
        # 1.0 travels as the canonical "1" and comes back an integer: still a score
        explanation={
            "components": {"text": 1.0, "taxonomy": 0.25},
            "shared_terms": ["cassava"],
            "shared_codes": ["F26B"],
        },
    ),
    "eoi": EOI,
    "eoi_reply": REPLY,
    "eoi_forward": head("eoi_forward", "cn", audience="th", eoi=EOI),
    "eoi_reply_forward": head("eoi_reply_forward", "cn", audience="vn", reply=REPLY),
}


def key_of(issuer: str) -> NodeKey:
    return KEYS[issuer].active


def wire(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` signed by its issuer, as a reader parses it from the canonical bytes."""
    signed = sign_object(obj, obj["issuer"], key_of(obj["issuer"]))
    parsed: dict[str, Any] = json.loads(canonical_bytes(signed))
    return parsed


def test_every_type_has_a_sample_and_a_model() -> None:
    assert set(SAMPLES) == set(WHO_MAY_SAY_WHAT)
    for kind, rule in WHO_MAY_SAY_WHAT.items():
        config = rule.model.model_config
        assert (config.get("frozen"), config.get("extra")) == (True, "forbid"), kind
        assert rule.model.model_fields["type"].default == kind


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_type_round_trips(kind: str) -> None:
    parsed = wire(SAMPLES[kind])
    model = WHO_MAY_SAY_WHAT[kind].model.model_validate(parsed)
    assert model.model_dump(mode="python", exclude_unset=True) == parsed
    issuer = parsed["issuer"]
    verify_object(parsed, issuer, KEYS[issuer].verify_keys())
    with pytest.raises(pydantic.ValidationError):
        model.model_copy().__setattr__("ts", TS + 1)  # frozen


def _nested_dicts(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every object inside ``obj`` that a model describes (not free maps)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(obj, dict):
        out.append(path)
        for key, value in obj.items():
            if key in ("fields", "signatures", "keys", "verify_keys", "old_verify_keys"):
                continue  # maps of names, not models: their values are checked below
            if key == "components":
                continue  # scores by name
            out.extend(_nested_dicts(value, (*path, key)))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out.extend(_nested_dicts(value, (*path, i)))
    return out


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_an_extra_field_anywhere_is_refused(kind: str) -> None:
    model = WHO_MAY_SAY_WHAT[kind].model
    parsed = wire(SAMPLES[kind])
    paths = _nested_dicts(parsed)
    assert paths
    for path in paths:
        bad = copy.deepcopy(parsed)
        target = bad
        for step in path:
            target = target[step]
        target["surplus"] = 1
        with pytest.raises(pydantic.ValidationError, match="surplus"):
            model.model_validate(bad)


def test_a_key_entry_in_the_directory_takes_no_extra_field() -> None:
    bad = copy.deepcopy(SAMPLES["directory"])
    bad["members"][0]["keys"]["ed25519:1"]["source"] = "fetch"
    with pytest.raises(pydantic.ValidationError, match="source"):
        WHO_MAY_SAY_WHAT["directory"].model.model_validate(bad)


def test_build_checks_and_keeps_only_what_was_given() -> None:
    fields = {k: v for k, v in SAMPLES["custody_receipt"].items() if k != "position"}
    assert build(CustodyReceipt, **fields) == fields  # no default (position) added
    with pytest.raises(pydantic.ValidationError):
        build(CustodyReceipt, **{**fields, "held": [{"listing_id": "x", "version": 0}]})
    with pytest.raises(pydantic.ValidationError):
        build(MatchNotice, **{**SAMPLES["match_notice"], "score": 1.5})


def test_hub_only_types_and_feed_items() -> None:
    assert HUB_ONLY_TYPES == {
        "directory",
        "custody",
        "custody_receipt",
        "match_notice",
        "eoi_forward",
        "eoi_reply_forward",
    }
    assert FEED_ITEM_TYPES == {
        "listing",
        "retraction",
        "custody_receipt",
        "match_notice",
        "eoi_forward",
        "eoi_reply_forward",
    }


@pytest.mark.parametrize("kind", sorted(FEED_ITEM_TYPES & HUB_ONLY_TYPES))
def test_a_hub_only_item_counts_only_in_the_hubs_feed(kind: str) -> None:
    from_hub = wire(SAMPLES[kind])
    me = from_hub["audience"]
    item = check_item(from_hub, peer="cn", me=me, keys=KEYS["cn"].verify_keys(), hub="cn")
    assert item.key_name == "ed25519:1"
    # The same object, issued and signed by a member in its own feed
    member = "th" if me != "th" else "vn"
    planted = wire({**SAMPLES[kind], "issuer": member})
    for hub in ("cn", None):
        with pytest.raises(PageError) as err:
            check_item(planted, peer=member, me=me, keys=KEYS[member].verify_keys(), hub=hub)
        assert err.value.code == "issuer_not_the_hub"
    # ... and the hub's object relayed in a member's feed is no better
    with pytest.raises(PageError) as err:
        check_item(from_hub, peer=member, me=me, keys=KEYS["cn"].verify_keys(), hub="cn")
    assert err.value.code == "issuer_not_the_hub"


def test_a_feed_item_of_another_type_is_refused() -> None:
    for kind in sorted(set(SAMPLES) - FEED_ITEM_TYPES):
        obj = wire(SAMPLES[kind])
        with pytest.raises(PageError) as err:
            check_item(obj, peer="cn", me="th", keys=KEYS["cn"].verify_keys(), hub="cn")
        assert err.value.code == "schema_invalid", kind


def docs_table() -> list[tuple[str, ...]]:
    text = (PROJECT_ROOT / "docs" / "protocol-notes.md").read_text(encoding="utf-8")
    section = text.split("## Who may say what", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"`[a-z_]+`", cells[0]):
            rows.append(tuple(c.strip("`") for c in cells))
    return rows


def test_the_docs_carry_the_same_table() -> None:
    code = [
        (a.kind, a.issuer.value, a.audience, a.channel.value, a.model.__name__)
        for a in WHO_MAY_SAY_WHAT.values()
    ]
    assert docs_table() == code
    assert {i.value for i in Issuer} <= {row[1] for row in code}
    assert {c.value for c in Channel} == {row[3] for row in code} | {"the issuer's own feed"}
