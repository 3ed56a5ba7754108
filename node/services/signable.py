"""What to send when a stored listing holds a value that cannot be signed.

Input is bounded (``protocol.listing``: integers within +-2**53), so a node never stores
such a value now; one stored before those bounds (an agreement's ``value_usd`` of 10**20)
would make canonical JSON, and so every feed page for an audience that may see that
field, fail. Rather than fail the page, and with it every later withdrawal, the summary
goes out without those fields: less than the policy allows, never more. The error log
names the listing and the fields, so the operator corrects it.
"""

from __future__ import annotations

import logging
from typing import Any

from protocol.canonical import CanonicalizationError, canonical_bytes

logger = logging.getLogger(__name__)


def _without_unsignable(fields: Any, bad: set[str]) -> Any:
    if not isinstance(fields, dict):
        return fields
    out = {}
    for name, value in fields.items():
        try:
            canonical_bytes(value)
        except CanonicalizationError:
            bad.add(name)
            continue
        out[name] = value
    return out


def signable_view(view: dict[str, Any]) -> dict[str, Any]:
    """``view`` less the fields (its own and its public view's) that cannot be signed;
    raises ``CanonicalizationError`` when dropping fields does not help."""
    bad: set[str] = set()
    out = {**view, "fields": _without_unsignable(view.get("fields"), bad)}
    public = view.get("public_view")
    if isinstance(public, dict):
        out["public_view"] = {**public, "fields": _without_unsignable(public.get("fields"), bad)}
    if not bad:
        raise CanonicalizationError(f"listing {view.get('id')} cannot be signed")
    logger.error(
        "listing %s holds values that cannot be signed (beyond +-2**53?) in: %s; its "
        "summaries go out without them until the listing is corrected",
        view.get("id"),
        ", ".join(sorted(bad)),
    )
    return out
