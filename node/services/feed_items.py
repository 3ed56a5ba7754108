"""What one listing gives one reader on a feed page: the stored signed summary when it
still holds (``summary_cache``), else the policy's decision made and signed now (and kept
for the next pages), with the retractions the reader is owed. ``feed`` walks the change
log and assembles pages; this module decides each item.

An item is its canonical bytes and what the page's bookkeeping needs of it (its kind and
the name consent it carries): a stored summary goes out as the bytes it was stored as,
never parsed or serialised again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.services import summary_cache
from node.services.share_log import SUMMARY, WITHDRAWAL
from node.services.views import signed_retraction
from node.storage.models import ListingRow
from policies.compiled import CompiledPolicy
from policies.evaluate import evaluate

if TYPE_CHECKING:
    from node.services.parts import NodeParts


class Listing(NamedTuple):
    """What a page reads of a listing."""

    id: str
    category: str
    version: int
    withdrawn: bool
    expires: int
    content_sha256: str


class Sent(NamedTuple):
    """What the reader was last given of a listing (its ``feed_sent`` row)."""

    listing_id: str
    version: int
    consent: bool
    retracted: bool


class Item(NamedTuple):
    """One item of a page: its canonical bytes, ``kind`` (``share_log.SUMMARY`` or
    ``WITHDRAWAL``; None for an outbox object) and, for a summary, its name consent."""

    data: bytes
    kind: str | None
    consent: bool = False


REASON = {"withdrawn": "withdrawn", "expired": "expired"}


@dataclass(frozen=True)
class PageContext:
    """What every item of one page is made with."""

    view: summary_cache.ReaderView
    compiled: CompiledPolicy
    policy_version: int
    now: int


def reuse(
    row: Listing, sent: Sent | None, stored: summary_cache.Stored | None, ctx: PageContext
) -> Literal["stored", "nothing", "fresh"]:
    """Whether the stored entry answers for ``row``: its summary (``stored``), nothing for
    this reader (``nothing``), or ``fresh`` when the item must be made now: the listing
    is withdrawn or expired, the store has nothing for this version and view, or a
    retraction comes with or went before the summary (a reader's tombstone yields only
    to a later ``ts``)."""
    if row.withdrawn or row.expires <= ctx.now:
        return "fresh"
    if stored is None or not summary_cache.usable(
        stored, version=row.version, content_sha256=row.content_sha256, digest=ctx.view.digest
    ):
        return "fresh"
    if stored.body is None:
        return "nothing"
    if sent is not None and (sent.retracted or (sent.consent and not stored.consent)):
        return "fresh"
    return "stored"


def load_records(session: Session, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The records of the listings a page must evaluate (those it cannot reuse)."""
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        stmt = select(ListingRow.id, ListingRow.record).where(
            ListingRow.id.in_(ids[start : start + 500])
        )
        out.update((lid, json.loads(text)) for lid, text in session.execute(stmt))
    return out


class ItemMaker:
    """Makes one page's items for its reader; what it signs goes to ``made``, for the
    store, in the page's transaction."""

    def __init__(self, rt: NodeParts, ctx: PageContext, records: dict[str, dict[str, Any]]) -> None:
        self.rt = rt
        self.ctx = ctx
        self.records = records
        self.made: list[dict[str, Any]] = []

    def items(
        self, row: Listing, sent: Sent | None, stored: summary_cache.Stored | None
    ) -> list[Item]:
        """What ``row`` gives this reader now: signed items, as bytes."""
        state = reuse(row, sent, stored, self.ctx)
        if state == "stored":
            assert stored is not None and stored.body is not None
            return [Item(stored.body.encode("utf-8"), SUMMARY, stored.consent)]
        if state == "nothing":
            assert stored is not None
            if sent is None:
                return []
            return [self.retraction(row, REASON.get(stored.code, "not_shared"))]
        return self.fresh(row, sent, self.records[row.id])

    def retraction(self, row: Listing, reason: str) -> Item:
        _, data = signed_retraction(
            issuer=self.rt.node_id,
            audience=self.ctx.view.audience.node_id,
            listing_id=row.id,
            category=row.category,
            version=row.version,
            reason=reason,
            key=self.rt.keys.active,
            now_ms=self.ctx.now,
        )
        return Item(data, WITHDRAWAL)

    def fresh(self, row: Listing, sent: Sent | None, record: dict[str, Any]) -> list[Item]:
        """What ``row`` gives this reader, evaluated and signed now."""
        ctx = self.ctx
        audience = ctx.view.audience
        out: list[Item] = []
        decision = evaluate(record, audience, ctx.compiled, ctx.now, withdrawn=row.withdrawn)
        if decision.view is None:
            self._keep(row, decision.code)
            if sent is not None:
                out.append(self.retraction(row, REASON.get(decision.code, "not_shared")))
            return out
        consent = bool(decision.view["rights"].get("name_logo_consent"))
        if sent is not None and not sent.retracted and sent.consent and not consent:
            out.append(self.retraction(row, "consent_revoked"))
        obj, data, code = summary_cache.make_summary(
            self.rt, record, audience, ctx.compiled, ctx.policy_version, ctx.now, decision
        )
        assert obj is not None and data is not None  # the same decision as above
        self._keep(row, code, data, consent)
        # The consent the reader holds is the one the signed summary carries.
        out.append(Item(data, SUMMARY, bool(obj["listing"]["rights"].get("name_logo_consent"))))
        return out

    def _keep(
        self, row: Listing, code: str, data: bytes | None = None, consent: bool = False
    ) -> None:
        """Note what was made of a live listing, for the store."""
        if row.withdrawn or row.expires <= self.ctx.now:
            return
        self.made.append(
            summary_cache.entry(
                self.ctx.view.audience.node_id,
                row.id,
                version=row.version,
                content_sha256=row.content_sha256,
                digest=self.ctx.view.digest,
                ts=self.ctx.now,
                consent=consent,
                code=code,
                body=data,
            )
        )
