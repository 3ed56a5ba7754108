"""What arrived through the hub's feed, turned into EoI states, reading each row once.

A member's inbox keeps every forwarded EoI and reply it ever received; the console's
pages and ``cattc eoi list`` absorb it on each call. So ``absorb_inbox`` remembers, in
one ``meta`` row, the last inbox id it read (``after``) and reads only newer rows, in
the transaction that applies them. That row is locked first (``SELECT ... FOR UPDATE``
on PostgreSQL; SQLite's write transactions are serial already), so two callers at once
take turns: the second finds the mark moved and reads nothing. A call that finds
nothing new (one indexed read) takes no lock at all. The writes would be
harmless twice anyway: new EoIs are ``INSERT ... ON CONFLICT DO NOTHING`` and a reply
is a conditional update from an unanswered state.

A row is passed over for good when it cannot be taken (not this node's listing, not a
valid object, an answer to nothing of ours). One whose signer is not yet known here, or
whose signature does not verify with the keys known here, may be taken once the
directory is refreshed: its id is kept in the same ``meta`` row (``retry``) and tried
again on each call, for ``RETRY_MS`` after it arrived.

Inbox ids from the hub commit in order: its feed is stored by one pull at a time (the
pull locks the hub's ``peer_state`` row), so a mark never passes a row still to commit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from node.hub.eoi_gate import SignatureInvalid, UnknownIssuer, parse, verify_from
from node.services.errors import ServiceError
from node.services.peers import PeerInfo
from node.storage.insert_ignore import insert_ignore
from node.storage.models import EoiRow, InboxRow, MetaRow
from protocol.eoi import EoiForward, EoiReplyForward

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

logger = logging.getLogger(__name__)
MARK_KEY = "eoi_inbox_absorbed"
TYPES = ("eoi_forward", "eoi_reply_forward")
RETRY_MS = 7 * 24 * 3600 * 1000  # a week for the signer's key to become known here
RETRY_MAX = 1000  # ids kept for another try (the newest)
ABSORB_BATCH = 2000  # inbox rows read in one transaction
OPEN = ("submitted", "forwarded")  # states an answer may still change
CHUNK = 500
InboxLine = Row[int, str, int, str]  # id, type, received_at, obj


@dataclass
class Mark:
    after: int = 0
    retry: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, text: str) -> Mark:
        try:
            data = json.loads(text)
            return cls(int(data["after"]), [int(i) for i in data.get("retry", [])])
        except (ValueError, TypeError, KeyError):
            logger.warning("the EoI inbox mark %r is unreadable; reading the inbox again", text)
            return cls()

    def text(self) -> str:
        return json.dumps({"after": self.after, "retry": self.retry})


def _lock_mark(session: Session) -> MetaRow:
    """The mark's row, locked for this transaction (made at the first call)."""
    stmt = select(MetaRow).where(MetaRow.key == MARK_KEY).with_for_update()
    row = session.scalar(stmt)
    if row is None:
        # Two first callers: the second's insert waits for the first, then does nothing.
        insert_ignore(session, MetaRow, [{"key": MARK_KEY, "value": Mark().text()}])
        row = session.scalar(stmt)
    assert row is not None
    return row


def _nothing_new(rt: NodeRuntime) -> bool:
    """True if no row arrived since the mark and none waits for another try: checked
    without the write lock, so a view with nothing new never waits for a writer."""
    with Session(rt.engine) as session:
        meta = session.get(MetaRow, MARK_KEY)
        if meta is None:
            return False
        mark = Mark.of(meta.value)
        newer = select(InboxRow.id).where(InboxRow.type.in_(TYPES), InboxRow.id > mark.after)
        return not mark.retry and session.scalar(newer.limit(1)) is None


def absorb_inbox(rt: NodeRuntime) -> int:
    """Turn forwarded EoIs and replies received from the hub since the last call into
    EoI states; the number of inbox rows read."""
    if _nothing_new(rt):
        return 0
    now = rt.clock()
    total, first = 0, True
    while True:  # a batch a transaction: 100,000 held at once took 51 s and 2.5 GB
        read, more = _absorb_batch(rt, now, retry=first)
        total, first = total + read, False
        if not more:
            return total


def _absorb_batch(rt: NodeRuntime, now: int, *, retry: bool) -> tuple[int, bool]:
    """Up to ``ABSORB_BATCH`` new rows in one transaction, with the rows kept for another
    try when ``retry``: the number read, and whether more may follow."""
    columns = (InboxRow.id, InboxRow.type, InboxRow.received_at, InboxRow.obj)
    with Session(rt.engine) as session, session.begin():
        meta = _lock_mark(session)
        mark = Mark.of(meta.value)
        newer = select(*columns).where(InboxRow.type.in_(TYPES), InboxRow.id > mark.after)
        rows = list(session.execute(newer.order_by(InboxRow.id).limit(ABSORB_BATCH)).all())
        more = len(rows) == ABSORB_BATCH
        kept = [] if retry else list(mark.retry)
        if retry and mark.retry:
            again = select(*columns).where(InboxRow.type.in_(TYPES), InboxRow.id.in_(mark.retry))
            rows = sorted([*session.execute(again).all(), *rows], key=lambda r: r.id)
        if not rows:
            return 0, False
        kept += _Absorber(rt, session).take(rows, now)
        meta.value = Mark(max(mark.after, rows[-1].id), kept[-RETRY_MAX:]).text()
    return len(rows), more


def _eoi_id(model: EoiForward | EoiReplyForward) -> str:
    return model.eoi.id if isinstance(model, EoiForward) else model.reply.eoi_id


@dataclass
class _Item:
    inbox_id: int
    kind: str
    at: int
    obj: dict[str, Any]
    model: EoiForward | EoiReplyForward


class _Absorber:
    """One call's work: the rows parsed, what is known of their EoIs read in a few
    queries, signatures checked once per object, new EoIs inserted together."""

    def __init__(self, rt: NodeRuntime, session: Session) -> None:
        self.rt = rt
        self.session = session
        # What this node holds of the EoIs the rows are about: id -> (state, requester, owner)
        self.known: dict[str, tuple[str, str, str]] = {}
        self.new: list[dict[str, Any]] = []
        self.signers: dict[str, PeerInfo | None] = {}  # each signer looked up once

    def take(self, rows: Sequence[InboxLine], now: int) -> list[int]:
        """Apply ``rows`` in order; the ids of those to try again later."""
        items = [i for i in (self._parse(r) for r in rows) if i is not None]
        self._load_known(items)
        retry: list[int] = []
        for item in items:
            try:
                if isinstance(item.model, EoiForward):
                    self._forward(item, item.model)
                else:
                    self._reply(item, item.model)
            except (UnknownIssuer, SignatureInvalid) as exc:
                if item.at > now - RETRY_MS:
                    retry.append(item.inbox_id)
                    logger.info(
                        "%s %s from the hub kept for another try: %s",
                        item.kind,
                        item.inbox_id,
                        exc.message,
                    )
                else:
                    logger.warning(
                        "%s %s from the hub given up: %s", item.kind, item.inbox_id, exc.message
                    )
            except ServiceError as exc:
                logger.info("ignored %s %s from the hub: %s", item.kind, item.inbox_id, exc.message)
        insert_ignore(self.session, EoiRow, self.new)
        return retry

    def _parse(self, row: InboxLine) -> _Item | None:
        try:
            obj = json.loads(row.obj)
            model: EoiForward | EoiReplyForward = (
                parse(EoiForward, obj, "forward")
                if row.type == "eoi_forward"
                else parse(EoiReplyForward, obj, "forward")
            )
        except (ValueError, ServiceError) as exc:
            logger.info("ignored %s %s from the hub: %s", row.type, row.id, exc)
            return None
        return _Item(row.id, row.type, row.received_at, obj, model)

    def _load_known(self, items: list[_Item]) -> None:
        ids = sorted({_eoi_id(i.model) for i in items})
        for start in range(0, len(ids), CHUNK):
            rows = self.session.execute(
                select(EoiRow.id, EoiRow.state, EoiRow.requester, EoiRow.owner).where(
                    EoiRow.id.in_(ids[start : start + CHUNK])
                )
            )
            self.known.update((r.id, (r.state, r.requester, r.owner)) for r in rows)

    def _forward(self, item: _Item, model: EoiForward) -> None:
        eoi = model.eoi
        if eoi.listing.owner != self.rt.node_id:
            return  # interest in someone else's listing: not ours to answer
        if eoi.id in self.known:
            return  # taken in before (its signature was checked then)
        verify_from(self.rt, item.obj["eoi"], eoi.issuer, self.signers)
        self.known[eoi.id] = ("forwarded", eoi.issuer, eoi.listing.owner)
        self.new.append(
            {
                "id": eoi.id,
                "requester": eoi.issuer,
                "owner": eoi.listing.owner,
                "listing_id": eoi.listing.id,
                "state": "forwarded",
                "updated": item.at,
                "received": item.at,
                "request_obj": json.dumps(item.obj["eoi"]),
                "reply_obj": None,
            }
        )

    def _reply(self, item: _Item, model: EoiReplyForward) -> None:
        reply = model.reply
        state, requester, owner = self.known.get(reply.eoi_id, ("", "", ""))
        if state not in OPEN:
            return  # unknown, or answered already: one answer, never flipped
        if reply.issuer != owner or requester != self.rt.node_id:
            return  # only the listing's owner answers, and only our own interest
        verify_from(self.rt, item.obj["reply"], reply.issuer, self.signers)
        contact = item.obj["reply"].get("contact") or {}
        new = "introduced" if reply.decision == "accepted" and contact else reply.decision
        self.session.execute(
            update(EoiRow)
            .where(EoiRow.id == reply.eoi_id, EoiRow.state.in_(OPEN))
            .values(state=new, updated=item.at, reply_obj=json.dumps(item.obj["reply"]))
            .execution_options(synchronize_session=False)
        )
        self.known[reply.eoi_id] = (new, requester, owner)
