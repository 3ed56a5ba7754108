"""The identity document verifies with an independent implementation of DESIGN 6.1.

The checker below uses only rfc8785 and PyNaCl, no project code, as another team would.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import rfc8785
from nacl.signing import VerifyKey

from tests.nodes import RunningNode, seed_for

NodeFactory = Callable[..., Awaitable[RunningNode]]


def _b64url(text: str) -> bytes:
    assert "=" not in text
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def independent_verify(doc: dict[str, Any]) -> None:
    """DESIGN 6.1: Ed25519 over RFC 8785 bytes of the object without 'signatures'."""
    issuer = doc["issuer"]
    body = {k: v for k, v in doc.items() if k != "signatures"}
    message = rfc8785.dumps(body)
    sigs = doc["signatures"][issuer]
    assert sigs, "no signature"
    for name, sig in sigs.items():
        key = doc["verify_keys"][name]["key"]
        VerifyKey(_b64url(key)).verify(message, _b64url(sig))  # raises on a bad signature


async def test_identity_document_verifies_independently(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("th")
    async with http.get(node.url + "/.well-known/cattc-node") as resp:
        assert resp.status == 200
        doc = await resp.json()
    assert doc["type"] == "node" and doc["v"] == 1 and doc["issuer"] == "th"
    assert doc["node_id"] == "th" and doc["country"] == "TH" and doc["base_url"] == node.url
    assert doc["protocols"] == ["cattc/1"]
    assert isinstance(doc["ts"], int)
    assert list(doc["verify_keys"]) == ["ed25519:1"]
    from nacl.signing import SigningKey

    expected = bytes(SigningKey(seed_for("th")).verify_key)
    assert _b64url(doc["verify_keys"]["ed25519:1"]["key"]) == expected
    independent_verify(doc)

    tampered = dict(doc, name="Someone else")
    try:
        independent_verify(tampered)
    except Exception as exc:  # nacl.exceptions.BadSignatureError
        assert exc.__class__.__name__ == "BadSignatureError"
    else:
        raise AssertionError("a tampered identity document verified")
