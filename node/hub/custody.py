"""Custody without ownership (DESIGN 3.3, 9): the hub says what it holds of each owner's
data, signed, so the owner can check it against its own log.

With each applied page, in its transaction, the hub queues a signed custody receipt for
the owner in its own feed; ``GET /federation/v1/custody`` answers the owner with the full
signed list; the owner's ``cattc custody check`` compares that list with what its feed gave the hub.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from node.clock import Clock
from node.hub.match_queue import queue_changes
from node.services.errors import SchemaInvalid
from node.services.feed import post_to_outbox
from node.services.remote_store import MAX_QUARANTINED, AppliedPage, PageHook, RemoteStore
from node.storage.models import FeedSentRow, RemoteListingRow
from protocol import PROTOCOL_VERSION
from protocol.hub_objects import CustodyList, build
from protocol.keys import NodeKey
from protocol.signing import sign_object

if TYPE_CHECKING:
    from node.runtime import NodeRuntime


def _entries(
    session: Session, origin: str, ids: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    stmt = (
        select(RemoteListingRow.listing_id, RemoteListingRow.version, RemoteListingRow.bytes_sha256)
        .where(RemoteListingRow.origin == origin)
        .order_by(RemoteListingRow.listing_id)
    )
    if ids is not None:
        stmt = stmt.where(RemoteListingRow.listing_id.in_(ids))
    return [{"listing_id": i, "version": v, "sha256": h} for i, v, h in session.execute(stmt)]


class CustodyReceipts:
    """A page hook (``RemoteStore(page_hooks=...)``): the signed custody receipt of each
    page that touched listings, queued to the owner in the page's own transaction, from
    what the page left held (no second read, no second transaction)."""

    def __init__(self, hub_id: str, key: Callable[[], NodeKey], clock: Clock) -> None:
        self.hub_id = hub_id
        self.key = key
        self.clock = clock

    def __call__(self, session: Session, page: AppliedPage) -> None:
        if not page.held:
            return
        ids = sorted(page.held)
        held = []
        for lid in ids:
            now = page.held[lid]
            if now is not None:
                held.append({"listing_id": lid, "version": now[0], "sha256": now[1]})
        # The fields ``build(CustodyReceipt, ...)`` would give (a test checks they are
        # the same), without validating a thousand entries the page itself just
        # checked: ids and versions from verified summaries, digests made here.
        receipt = {
            "type": "custody_receipt",
            "v": PROTOCOL_VERSION,
            "issuer": self.hub_id,
            "ts": self.clock(),
            "audience": page.origin,
            "position": page.position,
            "held": held,
            "purged": [lid for lid in ids if page.held[lid] is None],
            "rejected": len(page.result.rejected),
        }
        signed = sign_object(receipt, self.hub_id, self.key())
        post_to_outbox(session, page.origin, signed, page.now)


class HubRemoteStore(RemoteStore):
    """The hub's sync storage: each page's custody receipt to the owner with it, and its
    changes queued for the matcher (``node.hub.match_queue``)."""

    def __init__(
        self,
        engine: Engine,
        hub_id: str,
        key: Callable[[], NodeKey],
        clock: Clock,
        page_hooks: Iterable[PageHook] = (),
        *,
        max_per_origin: int | None = None,
        max_quarantined: int = MAX_QUARANTINED,
    ) -> None:
        hooks: list[PageHook] = [CustodyReceipts(hub_id, key, clock), queue_changes, *page_hooks]
        super().__init__(
            engine, hooks, max_per_origin=max_per_origin, max_quarantined=max_quarantined
        )
        self.hub_id = hub_id


def custody_document(rt: NodeRuntime, owner: str) -> dict[str, Any]:
    with Session(rt.engine) as session:
        entries = _entries(session, owner)
    doc = build(
        CustodyList,
        type="custody",
        v=PROTOCOL_VERSION,
        issuer=rt.node_id,
        ts=rt.clock(),
        audience=owner,
        entries=entries,
    )
    return sign_object(doc, rt.node_id, rt.keys.active)


def check_custody(rt: NodeRuntime, doc: dict[str, Any]) -> dict[str, Any]:
    """Compare the hub's custody list with what this node's feed gave the hub."""
    try:
        CustodyList.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise SchemaInvalid(f"the hub's custody list: {where}: {err['msg']}") from exc
    hub = rt.config.hub_id
    with Session(rt.engine) as session:
        given = {
            r.listing_id: r.version
            for r in session.scalars(
                select(FeedSentRow).where(
                    FeedSentRow.reader == hub, FeedSentRow.retracted.is_(False)
                )
            )
        }
    held = {e["listing_id"]: int(e["version"]) for e in doc.get("entries", [])}
    missing = sorted(i for i in given if i not in held)
    extra = sorted(i for i in held if i not in given)
    outdated = sorted(i for i in held if i in given and held[i] < given[i])
    return {
        "hub": hub,
        "held": len(held),
        "given": len(given),
        "missing": missing,
        "extra": extra,
        "outdated": outdated,
        "ok": not (missing or extra or outdated),
    }
