"""Signed objects (DESIGN 6.1): fixed-seed keys, exact bytes, and every way verification fails.

The expected signature below was computed once and checked independently with OpenSSL
(python ``cryptography``), so it pins the canonical payload and the signature together.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from protocol.b64 import b64url_decode, b64url_encode
from protocol.keys import KeyStore, VerifyKeyInfo
from protocol.signing import SignatureError, sign_object, signing_payload, verify_object

T0 = 1_700_000_000_000
TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

CN_SEED = bytes(range(32))
TH_SEED = bytes(range(32, 64))
CN_PUBLIC = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
TH_PUBLIC = "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7"

RETRACTION: dict[str, Any] = {
    "type": "retraction",
    "v": 1,
    "issuer": "cn",
    "ts": TS,
    "audience": "th",
    "listing_id": "cn-off-0001",
    "category": "tech_offer",
    "version": 3,
    "reason": "withdrawn",
}
PAYLOAD = (
    b'{"audience":"th","category":"tech_offer","issuer":"cn","listing_id":"cn-off-0001",'
    b'"reason":"withdrawn","ts":1767225600000,"type":"retraction","v":1,"version":3}'
)
SIGNATURE_HEX = (
    "82dcf2ad7cade1c651da6b3da4646c4a0817d704c3c9593d87fd0798de3ad9a6"
    "800d1424966396eb21fadff597d44f3ba3d3f3a73193a662623c855e4f110106"
)
SIGNATURE_B64 = (
    "gtzyrXyt4cZR2ms9pGRsSggX1wTDyVk9h_0HmN462aaADRQklmOW6yH63_WX1E87o9PzpzGTpmJiPIVeTxEBBg"
)


@pytest.fixture
def cn() -> KeyStore:
    return KeyStore.generate(T0, key_id="1", seed=CN_SEED)


@pytest.fixture
def th() -> KeyStore:
    return KeyStore.generate(T0, key_id="a", seed=TH_SEED)


@pytest.fixture
def signed(cn: KeyStore) -> dict[str, Any]:
    return sign_object(RETRACTION, "cn", cn.active)


def _code(obj: dict[str, Any], issuer: str, keys: dict[str, VerifyKeyInfo]) -> str:
    with pytest.raises(SignatureError) as info:
        verify_object(obj, issuer, keys)
    return info.value.code


def test_fixed_seeds_give_fixed_public_keys(cn: KeyStore, th: KeyStore) -> None:
    assert cn.active.public.hex() == CN_PUBLIC
    assert th.active.public.hex() == TH_PUBLIC
    assert cn.active.name == "ed25519:1"
    assert th.active.name == "ed25519:a"


def test_payload_is_rfc8785_without_signatures(signed: dict[str, Any]) -> None:
    assert signing_payload(RETRACTION) == PAYLOAD
    assert signing_payload(signed) == PAYLOAD


def test_exact_signature_bytes(signed: dict[str, Any]) -> None:
    assert signed["signatures"] == {"cn": {"ed25519:1": SIGNATURE_B64}}
    assert b64url_decode(SIGNATURE_B64).hex() == SIGNATURE_HEX
    assert b64url_encode(bytes.fromhex(SIGNATURE_HEX)) == SIGNATURE_B64
    assert "=" not in SIGNATURE_B64 and len(SIGNATURE_B64) == 86


def test_roundtrip(cn: KeyStore, signed: dict[str, Any]) -> None:
    assert verify_object(signed, "cn", cn.verify_keys()) == "ed25519:1"
    # the other members are left as they were, and the input is not modified
    assert {k: v for k, v in signed.items() if k != "signatures"} == RETRACTION
    assert "signatures" not in RETRACTION


def test_key_order_of_the_object_does_not_matter(cn: KeyStore, signed: dict[str, Any]) -> None:
    reordered = dict(reversed(list(signed.items())))
    assert verify_object(reordered, "cn", cn.verify_keys()) == "ed25519:1"


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("reason", "expired"),
        ("version", 4),
        ("audience", "vn"),
        ("ts", TS + 1),
        ("v", 2),
        ("extra", "added"),
    ],
)
def test_tampered_member_is_signature_invalid(
    cn: KeyStore, signed: dict[str, Any], member: str, value: object
) -> None:
    tampered = copy.deepcopy(signed)
    tampered[member] = value
    assert _code(tampered, "cn", cn.verify_keys()) == "signature_invalid"


def test_removed_member_is_signature_invalid(cn: KeyStore, signed: dict[str, Any]) -> None:
    tampered = copy.deepcopy(signed)
    del tampered["listing_id"]
    assert _code(tampered, "cn", cn.verify_keys()) == "signature_invalid"


def test_same_key_name_other_public_key_is_signature_invalid(
    th: KeyStore, signed: dict[str, Any]
) -> None:
    keys = {"ed25519:1": VerifyKeyInfo(th.active.public)}
    assert _code(signed, "cn", keys) == "signature_invalid"


def test_signature_of_another_issuer_is_signature_missing(th: KeyStore) -> None:
    by_th = sign_object(RETRACTION, "th", th.active)
    assert _code(by_th, "cn", th.verify_keys()) == "signature_missing"


def test_no_signatures_at_all_is_signature_missing(cn: KeyStore) -> None:
    assert _code(dict(RETRACTION), "cn", cn.verify_keys()) == "signature_missing"
    assert _code({**RETRACTION, "signatures": {"cn": {}}}, "cn", cn.verify_keys()) == (
        "signature_missing"
    )
    assert _code({**RETRACTION, "signatures": "x"}, "cn", cn.verify_keys()) == "signature_missing"


def test_unknown_key_is_key_not_valid(th: KeyStore, signed: dict[str, Any]) -> None:
    # th's keys are named ed25519:a; the object is signed with ed25519:1
    assert _code(signed, "cn", th.verify_keys()) == "key_not_valid"
    assert _code(signed, "cn", {}) == "key_not_valid"


def test_current_key_valid_until_bounds_ts(cn: KeyStore, signed: dict[str, Any]) -> None:
    public = cn.active.public
    assert _code(signed, "cn", {"ed25519:1": VerifyKeyInfo(public, valid_until=TS - 1)}) == (
        "key_not_valid"
    )
    # valid_until is the last moment the key counts
    assert verify_object(signed, "cn", {"ed25519:1": VerifyKeyInfo(public, valid_until=TS)})


def test_old_key_expired_at_bounds_ts(cn: KeyStore, signed: dict[str, Any]) -> None:
    public = cn.active.public
    for expired_at in (TS - 1, TS):
        keys = {"ed25519:1": VerifyKeyInfo(public, expired_at=expired_at)}
        assert _code(signed, "cn", keys) == "key_not_valid"
    keys = {"ed25519:1": VerifyKeyInfo(public, expired_at=TS + 1)}
    assert verify_object(signed, "cn", keys) == "ed25519:1"


def test_at_overrides_the_object_ts(cn: KeyStore, signed: dict[str, Any]) -> None:
    keys = {"ed25519:1": VerifyKeyInfo(cn.active.public, expired_at=TS + 1)}
    assert verify_object(signed, "cn", keys, at=TS) == "ed25519:1"
    with pytest.raises(SignatureError) as info:
        verify_object(signed, "cn", keys, at=TS + 1)
    assert info.value.code == "key_not_valid"


@pytest.mark.parametrize("ts", [None, "1767225600000", True, 1.5])
def test_object_without_integer_ts_is_schema_invalid(cn: KeyStore, ts: object) -> None:
    obj = {k: v for k, v in RETRACTION.items() if k != "ts"}
    if ts is not None:
        obj["ts"] = ts
    signed = sign_object(obj, "cn", cn.active)
    assert _code(signed, "cn", cn.verify_keys()) == "schema_invalid"


def test_signed_before_rotation_still_verifies(cn: KeyStore, signed: dict[str, Any]) -> None:
    rotated = cn.rotate(TS + 1000, seed=bytes(32))
    keys = rotated.verify_keys()
    assert keys["ed25519:1"] == VerifyKeyInfo(cn.active.public, None, TS + 1000)
    assert verify_object(signed, "cn", keys) == "ed25519:1"
    # after rotation the new key signs, and the old one no longer counts
    later = {**RETRACTION, "ts": TS + 2000}
    assert verify_object(sign_object(later, "cn", rotated.active), "cn", keys) == "ed25519:2"
    assert _code(sign_object(later, "cn", cn.active), "cn", keys) == "key_not_valid"


@pytest.mark.parametrize("old_first", [True, False])
def test_expired_and_current_signature_together_verify_in_any_order(
    cn: KeyStore, old_first: bool
) -> None:
    # Regression: verification used to stop at the first key, so an expired key listed
    # before a valid one refused an object that carries a valid signature.
    rotated = cn.rotate(TS - 1000, seed=bytes(32))
    both = sign_object(sign_object(RETRACTION, "cn", cn.active), "cn", rotated.active)
    sigs = both["signatures"]["cn"]
    names = ["ed25519:1", "ed25519:2"] if old_first else ["ed25519:2", "ed25519:1"]
    both["signatures"]["cn"] = {name: sigs[name] for name in names}
    assert verify_object(both, "cn", rotated.verify_keys()) == "ed25519:2"


def test_a_bad_signature_by_a_valid_key_is_never_outvoted(cn: KeyStore, th: KeyStore) -> None:
    keys = {**cn.verify_keys(), "ed25519:a": VerifyKeyInfo(th.active.public)}
    signed = sign_object(RETRACTION, "cn", cn.active)
    for bad_first in (True, False):
        good = signed["signatures"]["cn"]["ed25519:1"]
        bad = b64url_encode(bytes(64))
        pairs = [("ed25519:a", bad), ("ed25519:1", good)]
        obj = {**signed, "signatures": {"cn": dict(pairs if bad_first else pairs[::-1])}}
        assert _code(obj, "cn", keys) == "signature_invalid"


def test_signatures_member_is_not_signed(cn: KeyStore, signed: dict[str, Any]) -> None:
    decorated = copy.deepcopy(signed)
    decorated["signatures"]["zz"] = {"ed25519:9": "AAAA"}
    assert signing_payload(decorated) == PAYLOAD
    assert verify_object(decorated, "cn", cn.verify_keys()) == "ed25519:1"
    # signing an object that already carries signatures gives the same signature
    resigned = sign_object(decorated, "cn", cn.active)
    assert resigned["signatures"]["cn"]["ed25519:1"] == SIGNATURE_B64


def test_second_issuer_signature_keeps_the_first_valid(
    cn: KeyStore, th: KeyStore, signed: dict[str, Any]
) -> None:
    both = sign_object(signed, "th", th.active)
    assert set(both["signatures"]) == {"cn", "th"}
    assert both["signatures"]["cn"] == {"ed25519:1": SIGNATURE_B64}
    assert verify_object(both, "cn", cn.verify_keys()) == "ed25519:1"
    assert verify_object(both, "th", th.verify_keys()) == "ed25519:a"
    # the first signed object is untouched by the countersignature
    assert set(signed["signatures"]) == {"cn"}


@pytest.mark.parametrize(
    "text",
    [
        "not base64!",
        SIGNATURE_B64 + "==",
        SIGNATURE_B64.replace("_", "/"),
        SIGNATURE_B64 + "\n",
        SIGNATURE_B64[:-1] + "h",  # same 64 bytes, non-zero unused bits: not canonical
        SIGNATURE_B64[:-1],  # impossible length
        "",
        123,
        None,
    ],
)
def test_non_base64url_signature_is_refused(cn: KeyStore, text: object) -> None:
    obj = {**RETRACTION, "signatures": {"cn": {"ed25519:1": text}}}
    assert _code(obj, "cn", cn.verify_keys()) == "signature_invalid"


def test_non_canonical_base64url_is_refused_by_the_decoder() -> None:
    # Regression: 'AB' and 'AA' both decoded to b'\x00', so every signature had 16
    # spellings that verified (its last character carries 4 unused bits).
    assert b64url_decode("AA") == b"\x00"
    for text in ("AB", "AAB", SIGNATURE_B64[:-1] + "h"):
        with pytest.raises(ValueError, match="canonical"):
            b64url_decode(text)
    for text in ("AA==", "A", "AA AA", "AA+A", "AA/A"):
        with pytest.raises(ValueError):
            b64url_decode(text)


def test_signature_error_carries_code_and_message(cn: KeyStore) -> None:
    with pytest.raises(SignatureError) as info:
        verify_object(dict(RETRACTION), "cn", cn.verify_keys())
    assert info.value.code == "signature_missing"
    assert "cn" in info.value.message
    assert str(info.value) == info.value.message
