"""A prospective member's keys, read from its identity document (first-contact trust).

``cattc directory add --fetch`` and the hub operator's console both take a new member's
keys this way, so both apply the same rules: the document is fetched from the member's
own ``/.well-known/cattc-node`` (``http(s)`` only, a short timeout, a size cap), must
name the node the operator means and must verify with the keys it carries. What the
operator then confirms is shown as fingerprints (``key_fingerprint``).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import aiohttp

from node.services.directory import keys_from_identity, keys_from_json
from node.services.errors import InvalidInput
from protocol.b64 import b64url_decode
from protocol.signing import SignatureError, verify_object
from sync.client import PeerError, fetch_identity

FETCH_TIMEOUT_S = 5.0


class IdentityUnavailable(InvalidInput):
    """The identity document could not be fetched, or is not the named node's."""


class IdentityUnreachable(IdentityUnavailable):
    """Nothing usable came back from the URL (network, HTTP status, size, not JSON)."""


def identity_keys(doc: Any, node_id: str, base_url: str) -> dict[str, dict[str, Any]]:
    """The keys of ``doc`` if it is ``node_id``'s identity and verifies with them."""
    if not isinstance(doc, dict) or doc.get("node_id") != node_id:
        raise IdentityUnavailable(f"{base_url} is not node {node_id!r}")
    try:
        keys = keys_from_identity(doc)
        verify_object(doc, node_id, keys_from_json(keys))
    except SignatureError as exc:
        raise IdentityUnavailable(
            f"identity document of {node_id} does not verify: {exc.message}"
        ) from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise IdentityUnavailable(f"identity document of {node_id} is malformed") from exc
    if not keys:
        raise IdentityUnavailable(f"identity document of {node_id} carries no key")
    return keys


async def fetch_member_keys(
    session: aiohttp.ClientSession,
    base_url: str,
    node_id: str,
    *,
    timeout_s: float = FETCH_TIMEOUT_S,
) -> dict[str, dict[str, Any]]:
    """``node_id``'s verified keys from its identity document at ``base_url``."""
    if not base_url.startswith(("http://", "https://")):
        raise IdentityUnreachable(f"base URL {base_url!r} must be http:// or https://")
    try:
        async with asyncio.timeout(timeout_s):
            doc = await fetch_identity(session, base_url)
    except PeerError as exc:
        raise IdentityUnreachable(str(exc)) from exc
    except TimeoutError as exc:
        raise IdentityUnreachable(f"{base_url} did not answer within {timeout_s:g} s") from exc
    return identity_keys(doc, node_id, base_url)


def key_fingerprint(key_b64: str) -> str:
    """What a person compares: the first 128 bits of the SHA-256 of the raw public key,
    in groups of four hex digits."""
    digest = hashlib.sha256(b64url_decode(key_b64)).hexdigest()[:32]
    return " ".join(digest[i : i + 4] for i in range(0, 32, 4))
