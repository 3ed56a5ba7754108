"""Base64url without padding (RFC 4648 section 5), as every key and signature travels."""

from __future__ import annotations

import base64
import binascii
import re

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; refuse padding, other alphabets and impossible lengths.

    Only the canonical encoding is accepted (RFC 4648 section 3.5): the unused low bits of
    the last character must be zero, so one byte string has exactly one text form and a
    signature cannot be re-spelt into a different but still valid string.
    """
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:  # pragma: no cover - guarded by the regex above
        raise ValueError("not unpadded base64url") from exc
    if b64url_encode(raw) != text:
        raise ValueError("not canonical base64url (non-zero trailing bits)")
    return raw
