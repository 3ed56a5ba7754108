"""Error codes shared by every node, carried as ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # generic
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INVALID_JSON = "invalid_json"
    INVALID_LISTING = "invalid_listing"
    INVALID_POLICY = "invalid_policy"
    BODY_TOO_LARGE = "body_too_large"
    CONFLICT = "conflict"
    INTERNAL = "internal_error"
    # admin auth
    UNAUTHORIZED = "unauthorized"
    # federation request signatures (DESIGN 6)
    SIG_MISSING = "signature_missing"
    SIG_MALFORMED = "signature_malformed"
    UNKNOWN_ORIGIN = "unknown_origin"
    WRONG_DESTINATION = "wrong_destination"
    CLOCK_SKEW = "created_out_of_window"
    NONCE_REUSED = "nonce_reused"
    KEY_INVALID = "key_not_valid"
    BAD_SIGNATURE = "bad_signature"
    SUSPENDED = "member_suspended"
    # feed
    BAD_CURSOR = "bad_cursor"
    CURSOR_EXPIRED = "cursor_expired_resync"
    # signed objects
    SIGNATURE_INVALID = "signature_invalid"
    SCHEMA_INVALID = "schema_invalid"
    ISSUER_MISMATCH = "issuer_mismatch"
    STALE_VERSION = "stale_version"
