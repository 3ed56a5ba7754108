"""Custody without ownership (DESIGN 3.3, 9): the hub says what it holds of each owner's
data, signed, so the owner can check it against its own log.

After each applied page the hub queues a signed custody receipt for the owner in its own
feed; ``GET /federation/v1/custody`` answers the owner with the full signed list; the
owner's ``cattc custody check`` compares that list with what its feed gave the hub.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from node.clock import Clock
from node.services.errors import SchemaInvalid
from node.services.feed import post_to_outbox
from node.services.remote_store import RemoteStore
from node.storage.models import FeedSentRow, RemoteListingRow
from protocol import PROTOCOL_VERSION
from protocol.hub_objects import CustodyList, CustodyReceipt, build
from protocol.keys import NodeKey
from protocol.signing import sign_object
from sync.interfaces import ApplyResult, RejectedItem, VerifiedItem

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


class HubRemoteStore(RemoteStore):
    """The hub's sync storage: after each page it signs a custody receipt to the owner."""

    def __init__(
        self, engine: Engine, hub_id: str, key: Callable[[], NodeKey], clock: Clock
    ) -> None:
        super().__init__(engine)
        self.hub_id = hub_id
        self.key = key
        self.clock = clock

    def apply_page(
        self,
        peer: str,
        items: Sequence[VerifiedItem],
        rejected: Sequence[RejectedItem],
        *,
        next_cursor: str,
        head: int,
        position: int | None,
        now: int,
    ) -> ApplyResult:
        result = super().apply_page(
            peer, items, rejected, next_cursor=next_cursor, head=head, position=position, now=now
        )
        ids = sorted(
            {
                i.obj["listing"]["id"] if i.obj["type"] == "listing" else i.obj["listing_id"]
                for i in items
                if i.obj["type"] in ("listing", "retraction")
            }
        )
        if ids:
            with Session(self.engine) as session, session.begin():
                held = _entries(session, peer, ids)
                held_ids = {e["listing_id"] for e in held}
                receipt = build(
                    CustodyReceipt,
                    type="custody_receipt",
                    v=PROTOCOL_VERSION,
                    issuer=self.hub_id,
                    ts=self.clock(),
                    audience=peer,
                    position=position,
                    held=held,
                    purged=[i for i in ids if i not in held_ids],
                    rejected=len(result.rejected),
                )
                post_to_outbox(session, peer, sign_object(receipt, self.hub_id, self.key()), now)
        return result


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
