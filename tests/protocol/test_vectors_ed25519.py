"""Ed25519 against outside oracles: RFC 8032 section 7.1, sign.input and Wycheproof.

Nobody on this project wrote these values, so agreeing with them shows that key derivation,
signing and verification follow the standard rather than our own expectations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from protocol.keys import KeyStore
from protocol.signing import verify_signature_bytes
from tests.paths import TESTDATA, VECTORS, require

ED25519 = VECTORS / "ed25519"
WYCHEPROOF = VECTORS / "wycheproof" / "ed25519_test.C2SP.json"


def _load_json(path: Path) -> Any:
    return json.loads(require(path).read_text(encoding="utf-8"))


def _check_sign_and_verify(seed: bytes, public: bytes, message: bytes, signature: bytes) -> None:
    """Our key from ``seed`` has ``public``, signs ``message`` to exactly ``signature``."""
    store = KeyStore.generate(now_ms=0, key_id="1", seed=seed)
    assert store.active.public == public
    assert store.active.sign(message) == signature
    assert verify_signature_bytes(public, message, signature)
    # and the same signature does not cover a different message
    assert not verify_signature_bytes(public, message + b"\x00", signature)


def test_shared_testdata_is_present() -> None:
    require(TESTDATA)
    require(VECTORS)


def test_rfc8032_section_7_1() -> None:
    data = _load_json(ED25519 / "rfc8032_7_1_ed25519.json")
    tests = data["tests"]
    assert [t["name"] for t in tests] == [
        "TEST 1",
        "TEST 2",
        "TEST 3",
        "TEST 1024",
        "TEST SHA(abc)",
    ]
    for case in tests:
        message = bytes.fromhex(case["message"])
        assert len(message) == case["message_len"], case["name"]
        _check_sign_and_verify(
            bytes.fromhex(case["secret_key"]),
            bytes.fromhex(case["public_key"]),
            message,
            bytes.fromhex(case["signature"]),
        )


def test_rfc8032_test1_known_values() -> None:
    # Pinned here too, so a changed vector file cannot silently weaken the test above.
    _check_sign_and_verify(
        bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
        bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"),
        b"",
        bytes.fromhex(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
            "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        ),
    )


def test_sign_input_1024_lines() -> None:
    lines = require(ED25519 / "sign.input").read_text(encoding="ascii").splitlines()
    count = 0
    for number, line in enumerate(lines, start=1):
        fields = line.split(":")
        assert len(fields) == 5 and fields[4] == "", f"line {number}: unexpected format"
        secret, public_hex, message_hex, signed_hex = fields[:4]
        sk = bytes.fromhex(secret)
        public = bytes.fromhex(public_hex)
        message = bytes.fromhex(message_hex)
        signed = bytes.fromhex(signed_hex)
        # sk is seed || public key; the last field is signature || message
        assert len(sk) == 64 and sk[32:] == public, f"line {number}"
        assert signed[64:] == message, f"line {number}"
        _check_sign_and_verify(sk[:32], public, message, signed[:64])
        count += 1
    assert count == 1024


def test_wycheproof_ed25519_verify() -> None:
    data = _load_json(WYCHEPROOF)
    assert data["algorithm"] == "EDDSA"
    accepted: list[int] = []
    refused: list[int] = []
    wrong: list[str] = []
    for group in data["testGroups"]:
        assert group["type"] == "EddsaVerify"
        assert group["publicKey"]["curve"] == "edwards25519"
        public = bytes.fromhex(group["publicKey"]["pk"])
        for case in group["tests"]:
            ok = verify_signature_bytes(
                public, bytes.fromhex(case["msg"]), bytes.fromhex(case["sig"])
            )
            (accepted if ok else refused).append(case["tcId"])
            expected = case["result"] == "valid"
            assert case["result"] in ("valid", "invalid"), case["tcId"]
            if ok != expected:
                wrong.append(f"tcId {case['tcId']} ({case['comment']}): expected {case['result']}")
    assert wrong == []
    assert len(accepted) == 88
    assert len(refused) == 63
    assert len(accepted) + len(refused) == data["numberOfTests"] == 151


def test_verify_signature_bytes_refuses_wrong_lengths() -> None:
    data = _load_json(ED25519 / "rfc8032_7_1_ed25519.json")
    case = data["tests"][1]
    public = bytes.fromhex(case["public_key"])
    message = bytes.fromhex(case["message"])
    signature = bytes.fromhex(case["signature"])
    assert verify_signature_bytes(public, message, signature)
    assert not verify_signature_bytes(public[:31], message, signature)
    assert not verify_signature_bytes(public + b"\x00", message, signature)
    assert not verify_signature_bytes(public, message, signature[:63])
    assert not verify_signature_bytes(public, message, signature + b"\x00")
    assert not verify_signature_bytes(public, message, bytes(64))
