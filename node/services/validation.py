"""Turning an incoming record into a valid listing, with errors that name the field."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from node.services.errors import InvalidListing
from protocol.listing import Listing, normalize_record, parse_listing


def describe_validation_error(exc: ValidationError) -> tuple[str, str]:
    """(field path, message) of the first error, e.g. ('trl', 'Input should be ...')."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    # drop the discriminator tag pydantic puts first for tagged unions
    if loc and loc[0] in {
        "tech_offer",
        "tech_request",
        "expert",
        "organization",
        "event",
        "agreement",
    }:
        loc = loc[1:]
    field = ".".join(loc) or "record"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return field, msg


def validate_record(record: Any) -> Listing:
    """A listing from a JSON object in the import format (dates allowed) or wire format."""
    if not isinstance(record, dict):
        raise InvalidListing("a listing must be a JSON object", field="record")
    if "category" not in record:
        raise InvalidListing("field 'category' is required", field="category")
    try:
        return parse_listing(normalize_record(record))
    except ValidationError as exc:
        field, msg = describe_validation_error(exc)
        raise InvalidListing(f"field '{field}': {msg}", field=field) from exc
