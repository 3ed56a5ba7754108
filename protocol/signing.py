"""Sign and verify JSON objects exactly as DESIGN 6.1 says.

``signatures[issuer]["ed25519:<key_id>"]`` = Ed25519 over the RFC 8785 bytes of the object
with its ``signatures`` member removed. Verification works on a copy and raises one typed
error; a signature counts only if its key was valid at the object's own ``ts``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from protocol.b64 import b64url_decode, b64url_encode
from protocol.canonical import (
    CanonicalizationError,
    canonical_bytes,
    join_members,
    member_bytes,
)
from protocol.errors import ProtocolError
from protocol.keys import NodeKey, VerifyKeyInfo


class SignatureError(ProtocolError):
    """A signed object failed verification. ``code`` says why, for error responses."""


def signing_payload(obj: Mapping[str, Any], parts: Mapping[str, bytes] | None = None) -> bytes:
    """The bytes a signature covers: canonical JSON without ``signatures``. ``parts``:
    ``member_bytes(obj)`` when the caller has them already."""
    return join_members(parts if parts is not None else member_bytes(obj), omit="signatures")


def sign_object(obj: Mapping[str, Any], issuer: str, key: NodeKey) -> dict[str, Any]:
    """Return a copy of ``obj`` with ``issuer``'s signature added (others are kept).

    The copy is shallow but for ``signatures``: the members are shared with ``obj``, so
    neither may be changed afterwards (signed objects are never edited, only re-made).
    """
    return sign_object_bytes(obj, issuer, key)[0]


def sign_object_bytes(
    obj: Mapping[str, Any],
    issuer: str,
    key: NodeKey,
    *,
    parts: dict[str, bytes] | None = None,
) -> tuple[dict[str, Any], bytes]:
    """:func:`sign_object`, and the signed object's canonical bytes, from one
    serialisation. ``parts``: ``obj``'s members already serialised (``member_bytes``),
    e.g. a page around items whose bytes are known."""
    parts = dict(parts) if parts is not None else member_bytes(obj)
    signed = dict(obj)
    sig = key.sign(signing_payload(obj, parts))
    sigs = {name: dict(by_key) for name, by_key in (obj.get("signatures") or {}).items()}
    sigs.setdefault(issuer, {})[key.name] = b64url_encode(sig)
    signed["signatures"] = sigs
    parts["signatures"] = b'"signatures":' + canonical_bytes(sigs)
    return signed, join_members(parts)


def verify_signature_bytes(public: bytes, message: bytes, signature: bytes) -> bool:
    """Raw Ed25519 check (libsodium); False on any malformed input."""
    if len(public) != 32 or len(signature) != 64:
        return False
    try:
        VerifyKey(public).verify(message, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def verify_object(
    obj: Mapping[str, Any],
    issuer: str,
    keys: Mapping[str, VerifyKeyInfo],
    *,
    at: int | None = None,
    parts: Mapping[str, bytes] | None = None,
    payload: bytes | None = None,
) -> str:
    """Check that ``issuer`` signed ``obj`` with a key valid at the object's ``ts``.

    ``keys`` maps full key names (``ed25519:1``) to their public keys and validity.
    ``parts``: ``member_bytes(obj)`` when the caller has it (it needs the object's own
    canonical bytes too); ``payload``: the signing payload itself, when the caller has it
    (the one its signatures must cover). Returns the key name that verified. Raises
    :class:`SignatureError` otherwise.
    """
    sigs = obj.get("signatures")
    if not isinstance(sigs, dict) or not isinstance(sigs.get(issuer), dict):
        raise SignatureError("signature_missing", f"no signature by {issuer!r}")
    ts = obj.get("ts") if at is None else at
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise SignatureError("schema_invalid", "signed object has no integer ts")
    try:
        payload = signing_payload(obj, parts) if payload is None else payload
    except CanonicalizationError as exc:
        raise SignatureError("schema_invalid", f"not canonicalisable: {exc}") from exc
    # Judge every signature of the issuer, so the answer never depends on their order:
    # a signature by an unknown key, or by a key not valid at ``ts``, does not count;
    # one that counts and fails means the object was altered; at least one must count.
    verified: str | None = None
    out_of_window: str | None = None
    seen_unknown = False
    for name, sig_text in sigs[issuer].items():
        info = keys.get(name)
        if info is None:
            seen_unknown = True
            continue
        if not info.valid_at(ts):
            out_of_window = str(name)
            continue
        try:
            sig = b64url_decode(sig_text if isinstance(sig_text, str) else "?")
        except ValueError as exc:
            raise SignatureError("signature_invalid", f"signature {name} is not base64url") from exc
        if not verify_signature_bytes(info.key, payload, sig):
            raise SignatureError("signature_invalid", f"bad signature by {issuer} ({name})")
        verified = verified or str(name)
    if verified is not None:
        return verified
    if out_of_window is not None:
        raise SignatureError("key_not_valid", f"key {out_of_window} of {issuer} not valid at {ts}")
    code = "key_not_valid" if seen_unknown else "signature_missing"
    raise SignatureError(code, f"no signature of {issuer} with a known key")
