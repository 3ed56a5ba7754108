"""Which listings the hub holds at this moment, for lists built from the matcher.

The matcher's lists are as current as its last refresh (the matching worker takes a
retracted listing out between two batches of a re-match: seconds on a busy hub), but a
withdrawal is in the database as soon as the page telling it is applied. A list shown to
someone is therefore checked against the database first: a pair naming a listing that
is no longer held (retracted, purged, expired, or the hub's own listing withdrawn) is
left out, whatever the matcher still holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.storage.models import ListingRow, RemoteListingRow
from node.storage.ref_filter import refs_in

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

Ref = tuple[str, str]
CHUNK = 500  # keys per IN (...): well under every engine's bound on parameters


def held_now(rt: NodeRuntime, refs: Iterable[Ref]) -> set[Ref]:
    """Those of ``refs`` (owner, listing id) the hub holds now and that have not expired:
    a member's summary it keeps, or one of its own listings not withdrawn."""
    now = rt.clock()
    wanted = set(refs)
    own = sorted(lid for owner, lid in wanted if owner == rt.node_id)
    remote = sorted(ref for ref in wanted if ref[0] != rt.node_id)
    out: set[Ref] = set()
    with Session(rt.engine) as session:
        for start in range(0, len(remote), CHUNK):
            part = remote[start : start + CHUNK]
            rows = session.execute(
                select(RemoteListingRow.origin, RemoteListingRow.listing_id).where(
                    refs_in(RemoteListingRow.origin, RemoteListingRow.listing_id, part),
                    RemoteListingRow.expires > now,
                )
            )
            out.update((origin, lid) for origin, lid in rows)
        for start in range(0, len(own), CHUNK):
            ids = session.scalars(
                select(ListingRow.id).where(
                    ListingRow.id.in_(own[start : start + CHUNK]),
                    ListingRow.withdrawn.is_(False),
                    ListingRow.expires > now,
                )
            )
            out.update((rt.node_id, lid) for lid in ids)
    return out
