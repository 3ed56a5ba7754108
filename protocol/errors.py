"""Every error a node can name, one root exception, and one table from code to HTTP status.

Errors travel as ``{"error": {"code", "message"}}``. Each code has exactly one HTTP
status, here (``STATUS``), so that the admin API, the federation routes and the CLI
never disagree on what a code means; node/ and sync/ raise ``ProtocolError`` (or a
subclass) and ask ``http_status(code)`` for the status. Synapse's ``api/errors.py`` keeps
its ``Codes`` and ``SynapseError`` the same way.
"""

from __future__ import annotations

from enum import StrEnum
from http import HTTPStatus


class ErrorCode(StrEnum):
    # generic
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INVALID_JSON = "invalid_json"
    INVALID_LISTING = "invalid_listing"
    INVALID_POLICY = "invalid_policy"
    BODY_TOO_LARGE = "body_too_large"
    BODY_TIMEOUT = "body_timeout"
    SERVER_BUSY = "server_busy"
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
    CURSOR_MISMATCH = "cursor_mismatch"
    # an object no feed page could carry (refused where it is made), a page over the limit
    OBJECT_TOO_LARGE = "object_too_large"
    PAGE_TOO_LARGE = "page_too_large"
    # a feed that says "more" without moving: the cursor it was asked for given back, or a
    # run's whole page budget without one item (sync.reader)
    FEED_STALLED = "feed_stalled"
    # signed objects (what a reader quarantines, and why)
    SIGNATURE_INVALID = "signature_invalid"
    SCHEMA_INVALID = "schema_invalid"
    ISSUER_MISMATCH = "issuer_mismatch"
    AUDIENCE_MISMATCH = "audience_mismatch"
    STALE_VERSION = "stale_version"
    # a listing of an origin that holds the receiver's limit already (max_listings_per_member)
    OVER_LISTING_LIMIT = "over_listing_limit"
    # a type only the hub may issue, found in another node's feed (protocol.authority)
    NOT_THE_HUB = "issuer_not_the_hub"
    # a stored copy no longer matches the signed bytes it was made from
    STORED_MISMATCH = "mismatch"
    # directory (DESIGN 6): a mirror refuses a document; a key that only a hand-over changes
    DIRECTORY_REJECTED = "directory_rejected"
    KEY_CONFLICT = "key_conflict"
    # expressions of interest (DESIGN 9): a sender over its limits; a reply by another
    # node than the listing's owner; a second reply
    RATE_LIMITED = "rate_limited"
    NOT_LISTING_OWNER = "not_listing_owner"
    ALREADY_ANSWERED = "already_answered"


STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: HTTPStatus.BAD_REQUEST,
    ErrorCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    ErrorCode.METHOD_NOT_ALLOWED: HTTPStatus.METHOD_NOT_ALLOWED,
    ErrorCode.INVALID_JSON: HTTPStatus.BAD_REQUEST,
    ErrorCode.INVALID_LISTING: HTTPStatus.UNPROCESSABLE_ENTITY,
    ErrorCode.INVALID_POLICY: HTTPStatus.UNPROCESSABLE_ENTITY,
    ErrorCode.BODY_TOO_LARGE: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    ErrorCode.BODY_TIMEOUT: HTTPStatus.REQUEST_TIMEOUT,
    ErrorCode.SERVER_BUSY: HTTPStatus.SERVICE_UNAVAILABLE,
    ErrorCode.CONFLICT: HTTPStatus.CONFLICT,
    ErrorCode.INTERNAL: HTTPStatus.INTERNAL_SERVER_ERROR,
    ErrorCode.UNAUTHORIZED: HTTPStatus.UNAUTHORIZED,
    ErrorCode.SIG_MISSING: HTTPStatus.UNAUTHORIZED,
    ErrorCode.SIG_MALFORMED: HTTPStatus.UNAUTHORIZED,
    ErrorCode.UNKNOWN_ORIGIN: HTTPStatus.FORBIDDEN,
    ErrorCode.WRONG_DESTINATION: HTTPStatus.MISDIRECTED_REQUEST,
    ErrorCode.CLOCK_SKEW: HTTPStatus.UNAUTHORIZED,
    ErrorCode.NONCE_REUSED: HTTPStatus.UNAUTHORIZED,
    ErrorCode.KEY_INVALID: HTTPStatus.UNAUTHORIZED,
    ErrorCode.BAD_SIGNATURE: HTTPStatus.UNAUTHORIZED,
    ErrorCode.SUSPENDED: HTTPStatus.FORBIDDEN,
    ErrorCode.BAD_CURSOR: HTTPStatus.BAD_REQUEST,
    ErrorCode.CURSOR_EXPIRED: HTTPStatus.GONE,
    ErrorCode.CURSOR_MISMATCH: HTTPStatus.BAD_REQUEST,
    ErrorCode.OBJECT_TOO_LARGE: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    ErrorCode.PAGE_TOO_LARGE: HTTPStatus.BAD_GATEWAY,
    ErrorCode.FEED_STALLED: HTTPStatus.BAD_GATEWAY,
    ErrorCode.SIGNATURE_INVALID: HTTPStatus.BAD_REQUEST,
    ErrorCode.SCHEMA_INVALID: HTTPStatus.UNPROCESSABLE_ENTITY,
    ErrorCode.ISSUER_MISMATCH: HTTPStatus.BAD_REQUEST,
    ErrorCode.AUDIENCE_MISMATCH: HTTPStatus.BAD_REQUEST,
    ErrorCode.STALE_VERSION: HTTPStatus.CONFLICT,
    ErrorCode.OVER_LISTING_LIMIT: HTTPStatus.INSUFFICIENT_STORAGE,
    ErrorCode.NOT_THE_HUB: HTTPStatus.FORBIDDEN,
    ErrorCode.STORED_MISMATCH: HTTPStatus.INTERNAL_SERVER_ERROR,
    ErrorCode.DIRECTORY_REJECTED: HTTPStatus.BAD_REQUEST,
    ErrorCode.KEY_CONFLICT: HTTPStatus.CONFLICT,
    ErrorCode.RATE_LIMITED: HTTPStatus.TOO_MANY_REQUESTS,
    ErrorCode.NOT_LISTING_OWNER: HTTPStatus.FORBIDDEN,
    ErrorCode.ALREADY_ANSWERED: HTTPStatus.CONFLICT,
}


def http_status(code: str) -> int:
    """The one HTTP status of ``code``; 400 for a code this node does not know (a peer's)."""
    try:
        return STATUS[ErrorCode(code)]
    except ValueError:
        return int(HTTPStatus.BAD_REQUEST)


class ProtocolError(Exception):
    """The root of every error that carries a code: ``{"error": {"code", "message"}}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return http_status(self.code)

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": str(self.code), "message": self.message}}
