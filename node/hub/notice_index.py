"""Which listings the hub's match notices named to each member, as an index.

The EoI gate (``node.hub.eoi_gate``) lets a member ask about a listing a match notice
named to it. Reading that from the notices' text (every ``match_notice`` in the member's
outbox) costs a scan that grows with the member's notices, on each EoI. So each notice
queued that names a counterpart listing adds a ``notices_named`` row (reader, owner,
listing) in the transaction that queues it (``node.services.feed.post_to_outbox``), and
the gate asks the index. Migration 0011 filled it from the notices queued before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from node.storage.models import NoticeNamedRow


def named_counterpart(obj: Any) -> tuple[str, str] | None:
    """(owner, listing id) a match notice names, or None if it names no listing."""
    if not isinstance(obj, dict) or obj.get("type") != "match_notice":
        return None
    counterpart = obj.get("counterpart")
    if not isinstance(counterpart, dict):
        return None
    owner, listing_id = counterpart.get("owner"), counterpart.get("listing_id")
    if isinstance(owner, str) and isinstance(listing_id, str):
        return owner, listing_id
    return None


def note_queued(session: Session, queued: Iterable[tuple[int, str, dict[str, Any]]]) -> None:
    """Index the objects just queued, each (outbox id, reader, object), that are notices
    naming a listing: one insert for them all."""
    rows = [
        {"outbox_id": outbox_id, "reader": reader, "cp_owner": named[0], "cp_id": named[1]}
        for outbox_id, reader, obj in queued
        if (named := named_counterpart(obj)) is not None
    ]
    if rows:
        session.execute(insert(NoticeNamedRow), rows)


def was_named(session: Session, reader: str, owner: str, listing_id: str) -> bool:
    """True if a match notice queued for ``reader`` named ``owner``'s ``listing_id``."""
    found = session.scalar(
        select(NoticeNamedRow.outbox_id)
        .where(
            NoticeNamedRow.reader == reader,
            NoticeNamedRow.cp_owner == owner,
            NoticeNamedRow.cp_id == listing_id,
        )
        .limit(1)
    )
    return found is not None
