"""The ``CATTC-Sig`` request signature that every federation call carries (DESIGN 6.1).

``Authorization: CATTC-Sig origin="th",destination="cn",key="ed25519:1",created="<ms>",
nonce="<b64url>",sig="<b64url>"``, where ``sig`` is Ed25519 over the RFC 8785 bytes of
``{method, target, origin, destination, created, nonce, content_sha256}``.

This module builds and parses the header and checks the signature itself; the node adds
the checks that need state (known origins and keys, the nonce window, suspension).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from protocol.b64 import b64url_decode, b64url_encode
from protocol.canonical import CanonicalizationError, canonical_bytes
from protocol.errors import ProtocolError
from protocol.keys import NodeKey
from protocol.signing import verify_signature_bytes

SCHEME = "CATTC-Sig"
MAX_SKEW_MS = 5 * 60 * 1000
_PARAM = re.compile(r'\s*([a-z]+)="([^"]*)"\s*(?:,|$)')
_FIELDS = ("origin", "destination", "key", "created", "nonce", "sig")
_NODE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
_KEY = re.compile(r"^ed25519:[A-Za-z0-9_]{1,32}$")
MAX_HEADER_CHARS = 1024
"""A well-formed header is about 260 characters; anything this long is refused unread."""
# Longest value of each field: node ids, key names, milliseconds (15 digits until the
# year 9999), the nonce, and an Ed25519 signature in base64url (86 characters).
_MAX_CHARS = {"origin": 32, "destination": 32, "key": 41, "created": 16, "nonce": 64, "sig": 128}


class RequestSignatureError(ProtocolError):
    """A federation call's ``CATTC-Sig`` does not hold; ``code`` says why."""


@dataclass(frozen=True)
class RequestSignature:
    origin: str
    destination: str
    key: str
    created: int
    nonce: str
    sig: str

    def header(self) -> str:
        return (
            f'{SCHEME} origin="{self.origin}",destination="{self.destination}",'
            f'key="{self.key}",created="{self.created}",nonce="{self.nonce}",sig="{self.sig}"'
        )


def signing_input(
    *,
    method: str,
    target: str,
    origin: str,
    destination: str,
    created: int,
    nonce: str,
    body: bytes,
) -> bytes:
    """The bytes a request's signature covers. A target or field that is no text (a raw
    byte of the request line reaches us as a lone surrogate) is a malformed signature."""
    try:
        return canonical_bytes(
            {
                "method": method.upper(),
                "target": target,
                "origin": origin,
                "destination": destination,
                "created": created,
                "nonce": nonce,
                "content_sha256": hashlib.sha256(body).hexdigest(),
            }
        )
    except CanonicalizationError as exc:
        raise RequestSignatureError("signature_malformed", f"request is not text: {exc}") from exc


def sign_request(
    *,
    method: str,
    target: str,
    origin: str,
    destination: str,
    body: bytes,
    key: NodeKey,
    now_ms: int,
    nonce: str | None = None,
) -> RequestSignature:
    """Sign one request; ``target`` is the path with its query string exactly as sent."""
    nonce = nonce or b64url_encode(secrets.token_bytes(16))
    payload = signing_input(
        method=method,
        target=target,
        origin=origin,
        destination=destination,
        created=now_ms,
        nonce=nonce,
        body=body,
    )
    return RequestSignature(
        origin, destination, key.name, now_ms, nonce, b64url_encode(key.sign(payload))
    )


def parse_header(header: str | None) -> RequestSignature:
    """Parse an ``Authorization`` header; every field present once, each well-formed."""
    if not header:
        raise RequestSignatureError("signature_missing", "federation calls need a CATTC-Sig header")
    scheme, _, params = header.partition(" ")
    if scheme.lower() != SCHEME.lower():  # RFC 9110 11.1: schemes are case-insensitive
        raise RequestSignatureError("signature_missing", f"authorization scheme must be {SCHEME}")
    if len(header) > MAX_HEADER_CHARS:
        raise RequestSignatureError(
            "signature_malformed", f"CATTC-Sig header is longer than {MAX_HEADER_CHARS} characters"
        )
    values: dict[str, str] = {}
    pos = 0
    while pos < len(params):
        m = _PARAM.match(params, pos)
        if not m or m.end() == pos:
            raise RequestSignatureError("signature_malformed", "malformed CATTC-Sig parameters")
        name, value = m.group(1), m.group(2)
        if name in values or name not in _FIELDS:
            raise RequestSignatureError("signature_malformed", f"bad or repeated field {name!r}")
        limit = _MAX_CHARS[name]
        # Printable ASCII only: the fields go into the signed input, which must be text,
        # and a header's raw bytes reach us as lone surrogates (a 500 on canonicalising).
        if not (value.isascii() and value.isprintable()):
            raise RequestSignatureError(
                "signature_malformed", f"field {name!r} must be printable ASCII"
            )
        if len(value) > limit:
            raise RequestSignatureError(
                "signature_malformed", f"field {name!r} is longer than {limit} characters"
            )
        values[name] = value
        pos = m.end()
    missing = [f for f in _FIELDS if f not in values]
    if missing:
        raise RequestSignatureError("signature_malformed", f"missing {', '.join(missing)}")
    if not (_NODE.match(values["origin"]) and _NODE.match(values["destination"])):
        raise RequestSignatureError("signature_malformed", "origin and destination are node ids")
    created = values["created"]
    # ASCII only: str.isdigit() also accepts "²" (int() refuses it) and other scripts' digits.
    if not _KEY.match(values["key"]) or not (created.isascii() and created.isdigit()):
        raise RequestSignatureError("signature_malformed", "bad key name or created time")
    if not 8 <= len(values["nonce"]) <= 64:
        raise RequestSignatureError("signature_malformed", "nonce must be 8-64 characters")
    return RequestSignature(
        origin=values["origin"],
        destination=values["destination"],
        key=values["key"],
        created=int(values["created"]),
        nonce=values["nonce"],
        sig=values["sig"],
    )


def check_signature(
    sig: RequestSignature, *, method: str, target: str, body: bytes, public_key: bytes
) -> None:
    try:
        raw = b64url_decode(sig.sig)
    except ValueError as exc:
        raise RequestSignatureError("bad_signature", "signature is not base64url") from exc
    payload = signing_input(
        method=method,
        target=target,
        origin=sig.origin,
        destination=sig.destination,
        created=sig.created,
        nonce=sig.nonce,
        body=body,
    )
    if not verify_signature_bytes(public_key, payload, raw):
        raise RequestSignatureError("bad_signature", "request signature does not verify")
