"""Service-level errors, mapped to HTTP statuses and CLI messages by their callers."""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class InvalidListing(ServiceError):
    status = 422
    code = "invalid_listing"


class InvalidInput(ServiceError):
    status = 400
    code = "bad_request"
