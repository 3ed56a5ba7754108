"""Signed object models (DESIGN 6.1): node identity, listing summary, retraction, feed page."""

from __future__ import annotations

import copy
from typing import Any

import pydantic
import pytest

from protocol.b64 import b64url_decode
from protocol.keys import KeyStore, VerifyKeyInfo
from protocol.objects import FeedPage, ListingSummary, NodeIdentity, Retraction
from protocol.signing import sign_object, verify_object

TS = 1_767_225_600_000
RIGHTS = {"ip_owner": ["Guangxi Institute"], "attribution": "declined", "name_logo_consent": True}


@pytest.fixture
def keys() -> KeyStore:
    return KeyStore.generate(TS - 10_000, key_id="1", seed=bytes(range(32))).rotate(
        TS - 5_000, seed=bytes(32)
    )


@pytest.fixture
def identity(keys: KeyStore) -> dict[str, Any]:
    verify_keys: dict[str, dict[str, Any]] = {}
    old_verify_keys: dict[str, dict[str, Any]] = {}
    for name, info in keys.verify_keys().items():
        if info.expired_at is None:
            verify_keys[name] = {"key": info.b64, "valid_until": None}
        else:
            old_verify_keys[name] = {"key": info.b64, "expired_at": info.expired_at}
    obj = {
        "type": "node",
        "v": 1,
        "issuer": "cn",
        "ts": TS,
        "node_id": "cn",
        "name": "China-ASEAN Technology Transfer Center",
        "country": "CN",
        "base_url": "https://cn.cattc.example",
        "protocols": ["cattc/1"],
        "verify_keys": verify_keys,
        "old_verify_keys": old_verify_keys,
    }
    return sign_object(obj, "cn", keys.active)


def _summary(n: int = 1) -> dict[str, Any]:
    return {
        "type": "listing",
        "v": 1,
        "issuer": "cn",
        "ts": TS + n,
        "audience": "th",
        "listing": {
            "id": f"cn-off-{n:04d}",
            "category": "tech_offer",
            "version": 1,
            "updated": TS,
            "expires": TS + 86_400_000,
            "fields": {"title": {"en": "Pole cutter"}, "trl": 9},
            "rights": RIGHTS,
        },
        "policy": {"version": 2},
    }


def _retraction() -> dict[str, Any]:
    return {
        "type": "retraction",
        "v": 1,
        "issuer": "cn",
        "ts": TS,
        "audience": "th",
        "listing_id": "cn-off-0001",
        "category": "tech_offer",
        "version": 4,
        "reason": "withdrawn",
    }


def _page(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "feed_page",
        "v": 1,
        "issuer": "cn",
        "ts": TS,
        "audience": "th",
        "after": None,
        "next": "c1",
        "head": len(items),
        "more": False,
        "items": items,
    }


def _messages(exc: pytest.ExceptionInfo[pydantic.ValidationError]) -> str:
    return " ".join(e["msg"] for e in exc.value.errors())


# node identity


def test_identity_parses_and_its_own_keys_verify_it(identity: dict[str, Any]) -> None:
    node = NodeIdentity.model_validate(identity)
    assert node.node_id == node.issuer == "cn"
    assert set(node.verify_keys) == {"ed25519:2"}
    assert set(node.old_verify_keys) == {"ed25519:1"}
    assert node.old_verify_keys["ed25519:1"].expired_at == TS - 5_000
    keys = {
        name: VerifyKeyInfo(b64url_decode(k.key), valid_until=k.valid_until)
        for name, k in node.verify_keys.items()
    } | {
        name: VerifyKeyInfo(b64url_decode(k.key), expired_at=k.expired_at)
        for name, k in node.old_verify_keys.items()
    }
    assert verify_object(identity, "cn", keys) == "ed25519:2"


def test_identity_issuer_must_be_the_node(identity: dict[str, Any]) -> None:
    identity["issuer"] = "th"
    with pytest.raises(pydantic.ValidationError) as info:
        NodeIdentity.model_validate(identity)
    assert "issued by the node itself" in _messages(info)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("country",), "XX"),
        (("country",), "cn"),
        (("node_id",), "CN"),
        (("base_url",), "ftp://cn.example"),
        (("name",), ""),
        (("verify_keys",), {}),
        (("type",), "listing"),
        (("v",), 2),
        (("ts",), -1),
        (("ts",), "1767225600000"),
    ],
)
def test_identity_field_rules(identity: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    bad = copy.deepcopy(identity)
    bad[path[0]] = value
    with pytest.raises(pydantic.ValidationError) as info:
        NodeIdentity.model_validate(bad)
    assert info.value.errors()[0]["loc"][0] == path[0]


def test_identity_key_names_and_values(identity: dict[str, Any]) -> None:
    for name in ("rsa:1", "ed25519:", "ed25519:a-b", "1"):
        bad = copy.deepcopy(identity)
        bad["verify_keys"] = {name: bad["verify_keys"]["ed25519:2"]}
        with pytest.raises(pydantic.ValidationError):
            NodeIdentity.model_validate(bad)
    bad = copy.deepcopy(identity)
    bad["verify_keys"]["ed25519:2"]["key"] = "not base64!"
    with pytest.raises(pydantic.ValidationError):
        NodeIdentity.model_validate(bad)
    bad = copy.deepcopy(identity)
    del bad["old_verify_keys"]["ed25519:1"]["expired_at"]
    with pytest.raises(pydantic.ValidationError):
        NodeIdentity.model_validate(bad)


@pytest.mark.parametrize(
    "path",
    [(), ("verify_keys", "ed25519:2"), ("old_verify_keys", "ed25519:1")],
)
def test_identity_extra_fields_forbidden(identity: dict[str, Any], path: tuple[str, ...]) -> None:
    target = identity
    for part in path:
        target = target[part]
    target["surprise"] = 1
    with pytest.raises(pydantic.ValidationError) as info:
        NodeIdentity.model_validate(identity)
    [error] = info.value.errors()
    assert error["type"] == "extra_forbidden"
    assert error["loc"] == (*path, "surprise")


def test_signatures_shape_is_checked(identity: dict[str, Any]) -> None:
    sig = identity["signatures"]["cn"]["ed25519:2"]
    for signatures in (
        {"cn": {"rsa:2": sig}},
        {"CN": {"ed25519:2": sig}},
        {"cn": {"ed25519:2": sig + "="}},
        {"cn": {"ed25519:2": ""}},
        {"cn": sig},
    ):
        with pytest.raises(pydantic.ValidationError):
            NodeIdentity.model_validate({**identity, "signatures": signatures})


def test_models_are_frozen(identity: dict[str, Any]) -> None:
    node = NodeIdentity.model_validate(identity)
    with pytest.raises(pydantic.ValidationError):
        node.issuer = "th"  # type: ignore[misc]


# listing summary and retraction


def test_listing_summary() -> None:
    summary = ListingSummary.model_validate(_summary())
    assert summary.listing.id == "cn-off-0001"
    assert summary.policy.version == 2
    for member, value in (("audience", "TH"), ("policy", {"version": -1}), ("type", "node")):
        with pytest.raises(pydantic.ValidationError):
            ListingSummary.model_validate({**_summary(), member: value})
    with pytest.raises(pydantic.ValidationError) as info:
        ListingSummary.model_validate({**_summary(), "listing": {**_summary()["listing"], "x": 1}})
    assert info.value.errors()[0]["loc"] == ("listing", "x")


@pytest.mark.parametrize("reason", ["withdrawn", "expired", "not_shared", "consent_revoked"])
def test_retraction_reasons(reason: str) -> None:
    assert Retraction.model_validate({**_retraction(), "reason": reason}).reason == reason


@pytest.mark.parametrize(
    ("member", "value"),
    [("reason", "deleted"), ("version", 0), ("category", "patent"), ("extra", True)],
)
def test_retraction_refusals(member: str, value: object) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        Retraction.model_validate({**_retraction(), member: value})
    assert info.value.errors()[0]["loc"] == (member,)


# feed page


def test_feed_page_items_at_most_1000() -> None:
    items = [_summary(n) for n in range(1, 1001)]
    page = FeedPage.model_validate(_page(items))
    assert len(page.items) == 1000
    with pytest.raises(pydantic.ValidationError) as info:
        FeedPage.model_validate(_page([*items, _summary(1001)]))
    [error] = info.value.errors()
    assert error["loc"] == ("items",)
    assert error["type"] == "too_long"


def test_feed_page_shape() -> None:
    assert FeedPage.model_validate(_page([])).after is None
    assert FeedPage.model_validate({**_page([]), "after": "c0"}).after == "c0"
    without_after = {k: v for k, v in _page([]).items() if k != "after"}
    for bad in (
        without_after,
        {**_page([]), "more": "no"},
        {**_page([]), "head": -1},
        {**_page([]), "next": "c" * 201},
        {**_page([]), "items": ["not an object"]},
        {**_page([]), "cursor": "c1"},
    ):
        with pytest.raises(pydantic.ValidationError):
            FeedPage.model_validate(bad)
