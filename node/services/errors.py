"""Service-level errors: a ``ProtocolError`` with a fixed code each, so that the web
middleware answers with the one status ``protocol.errors.STATUS`` gives that code and
the CLI prints the message."""

from __future__ import annotations

from protocol.errors import ErrorCode, ProtocolError


class ServiceError(ProtocolError):
    code: str = ErrorCode.BAD_REQUEST

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(type(self).code, message)
        self.field = field


class NotFound(ServiceError):
    code = ErrorCode.NOT_FOUND


class Conflict(ServiceError):
    code = ErrorCode.CONFLICT


class InvalidListing(ServiceError):
    code = ErrorCode.INVALID_LISTING


class InvalidInput(ServiceError):
    code = ErrorCode.BAD_REQUEST


class SchemaInvalid(ServiceError):
    """A signed object (from a peer, or about to be signed) does not fit its model."""

    code = ErrorCode.SCHEMA_INVALID


class KeyConflict(ServiceError):
    """A known key name would get another key without a hand-over signed by the old one."""

    code = ErrorCode.KEY_CONFLICT
