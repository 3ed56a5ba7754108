"""Signed summaries kept per reader and listing, so feed pages are assembled from stored
bytes instead of evaluating the policy and signing every item inside the page request.

A stored summary is used only while everything it was made from is unchanged: the
listing's version and content hash, and the reader's *view digest* (the policy text and
version, the reader's audience, whether it is the hub, and the signing key). The key
includes them all, so a change never serves a stale view: it simply misses, and the page
signs afresh and stores that. ``body`` NULL records that the view gives the reader
nothing (a negative entry), so neither the page nor the pre-signing pass evaluates it again.

Reusing an older signature is sound for the reader (``sync.verify``, ``remote_store``):
an item is checked against the key valid at its own ``ts``, and a reader keeps the newest
of (version, ts, policy version). A row is replaced only by a newer signing, so the stored
``ts`` of a (reader, listing) never goes back; and the feed signs afresh whenever it sends
a retraction with, or after, a summary (a tombstone only yields to a later ``ts``).
Retractions themselves are signed when served.

``Presigner`` fills the store off the request path, in small transactions, for every
reader the node serves: resumable by construction, as each batch asks for what is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import CursorResult, and_, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from node.services.audiences import Membership, audience_of, membership
from node.services.listings import listing_head
from node.services.views import reader_envelope, signed_summary
from node.storage.models import FeedSentRow, ListingRow, SignedSummaryRow
from policies.compiled import CompiledPolicy
from policies.evaluate import Decision, evaluate
from policies.model import Audience

if TYPE_CHECKING:
    from node.services.parts import NodeParts

logger = logging.getLogger(__name__)
FORMAT = "summary/1"  # bump when what a summary carries changes: every stored row misses
BATCH = 200
CHUNK = 500


class Stored(NamedTuple):
    version: int
    content_sha256: str
    digest: str
    consent: bool
    code: str
    body: str | None


@dataclass(frozen=True)
class ReaderView:
    """What one reader's summaries are made from, besides the listing itself."""

    audience: Audience
    digest: str


def view_digest(
    *,
    audience: Audience,
    policy_version: int,
    policy_text: str,
    hub_id: str,
    issuer: str,
    key_name: str,
) -> str:
    """The digest of everything, besides the listing, that makes a reader's summary."""
    basis = [
        FORMAT,
        issuer,
        key_name,
        policy_version,
        hashlib.sha256(policy_text.encode("utf-8")).hexdigest(),
        audience.node_id,
        sorted(audience.groups),
        audience.member,
        hub_id if audience.node_id == hub_id else None,
    ]
    return hashlib.sha256(json.dumps(basis).encode("utf-8")).hexdigest()


def reader_view(
    rt: NodeParts,
    reader: str,
    compiled: CompiledPolicy,
    version: int,
    ms: Membership | None = None,
    policy_text: str | None = None,
) -> ReaderView:
    """The reader's audience and view digest under the active policy (``ms``: the
    directory's groups and members, ``policy_text``: the active policy's text, read here
    when not given)."""
    audience = audience_of(reader, compiled.policy, ms or membership(rt.engine))
    if policy_text is None:
        active = rt.policy.active_or_none()
        policy_text = active.text if active is not None else ""
    return ReaderView(
        audience,
        view_digest(
            audience=audience,
            policy_version=version,
            policy_text=policy_text,
            hub_id=rt.config.hub_id,
            issuer=rt.node_id,
            key_name=rt.keys.active.name,
        ),
    )


def load(session: Session, reader: str, ids: Sequence[str]) -> dict[str, Stored]:
    """The stored rows of ``reader`` for ``ids``."""
    out: dict[str, Stored] = {}
    t = SignedSummaryRow
    for start in range(0, len(ids), CHUNK):
        stmt = select(
            t.listing_id, t.version, t.content_sha256, t.digest, t.consent, t.code, t.body
        ).where(t.reader == reader, t.listing_id.in_(ids[start : start + CHUNK]))
        for r in session.execute(stmt):
            out[r.listing_id] = Stored(
                r.version, r.content_sha256, r.digest, r.consent, r.code, r.body
            )
    return out


def usable(stored: Stored | None, *, version: int, content_sha256: str, digest: str) -> bool:
    return (
        stored is not None
        and stored.version == version
        and stored.content_sha256 == content_sha256
        and stored.digest == digest
    )


def entry(
    reader: str,
    listing_id: str,
    *,
    version: int,
    content_sha256: str,
    digest: str,
    ts: int,
    consent: bool = False,
    code: str = "shared",
    body: bytes | None = None,
) -> dict[str, Any]:
    """A row to ``save``."""
    return {
        "reader": reader,
        "listing_id": listing_id,
        "version": version,
        "content_sha256": content_sha256,
        "digest": digest,
        "ts": ts,
        "consent": consent,
        "code": code[:40],
        "body": body.decode("utf-8") if body is not None else None,
    }


def save(session: Session, rows: Iterable[dict[str, Any]]) -> None:
    """Insert or replace rows, each only by a signing at least as new (``ts`` never goes
    back), in key order (two writers never wait on each other crosswise)."""
    batch = sorted(rows, key=lambda r: (r["reader"], r["listing_id"]))
    if not batch:
        return
    table = SignedSummaryRow.__table__
    name = session.get_bind().dialect.name
    dialect: Any = postgresql if name == "postgresql" else sqlite
    for start in range(0, len(batch), CHUNK):
        stmt = dialect.insert(table)
        cols = ("version", "content_sha256", "digest", "ts", "consent", "code", "body")
        stmt = stmt.on_conflict_do_update(
            index_elements=["reader", "listing_id"],
            set_={c: stmt.excluded[c] for c in cols},
            where=stmt.excluded.ts >= table.c.ts,
        )
        session.execute(stmt, batch[start : start + CHUNK])


def served_readers(session: Session, rt: NodeParts) -> list[str]:
    """Every reader this node serves a feed to: the hub, its configured peers, and each
    node that has read its feed."""
    ids = set(session.scalars(select(FeedSentRow.reader).distinct()))
    if rt.config.hub_id:
        ids.add(rt.config.hub_id)
    ids.update(p.node_id for p in rt.config.peers)
    ids.discard(rt.node_id)
    return sorted(ids)


def prune(session: Session, readers: Sequence[str], now: int) -> int:
    """Drop rows no page will use: of readers no longer served, and of listings gone,
    withdrawn or expired. Rows of a changed listing or view are replaced, not added."""
    t = SignedSummaryRow
    dead = select(ListingRow.id).where(
        or_(ListingRow.withdrawn.is_(True), ListingRow.expires <= now)
    )
    gone = ~select(ListingRow.id).where(ListingRow.id == t.listing_id).exists()
    cond = or_(t.listing_id.in_(dead), gone)
    if readers:
        cond = or_(cond, t.reader.not_in(list(readers)))
    result = session.execute(delete(t).where(cond))
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)


def make_summary(
    rt: NodeParts,
    record: dict[str, Any],
    audience: Audience,
    compiled: CompiledPolicy,
    policy_version: int,
    now: int,
    decision: Decision | None = None,
) -> tuple[dict[str, Any] | None, bytes | None, str]:
    """The signed summary of a live listing for ``audience`` (object, bytes, code), or
    (None, None, code) when its view gives it nothing. ``decision``: the policy's, when
    the caller has it already."""
    decision = decision or evaluate(record, audience, compiled, now)
    if decision.view is None:
        return None, None, decision.code
    rule = compiled.policy.rules[decision.rule_index - 1] if decision.rule_index else None
    obj, data = signed_summary(
        issuer=rt.node_id,
        audience=audience.node_id,
        view=reader_envelope(
            decision.view,
            record,
            reader=audience.node_id,
            hub_id=rt.config.hub_id,
            compiled=compiled,
            now_ms=now,
        ),
        policy_version=policy_version,
        key=rt.keys.active,
        now_ms=now,
        relay=rule.relay.to_dict() if rule is not None and rule.relay else None,
    )
    return obj, data, decision.code


class Presigner:
    """Fills the store for every served reader, a batch at a time, off the event loop."""

    def __init__(self, rt: NodeParts, *, batch: int = BATCH) -> None:
        self.rt = rt
        self.batch = batch
        # Per reader, the (view digest, change-log head) at which it was last complete:
        # a pass with nothing new costs one query per reader.
        self._done: dict[str, tuple[str, int]] = {}
        self._pruned_at: tuple[int, list[str]] | None = None  # (head, readers) last pruned

    def plan(self) -> list[tuple[str, str, int]]:
        """The readers that may have work: (reader, digest, change-log head); prunes."""
        version, compiled = self.rt.policy.compiled()
        now = self.rt.clock()
        with Session(self.rt.engine) as session:
            readers = served_readers(session, self.rt)
            # A hub's outbox entries, one per match notice queued, change no summary and
            # start no pass.
            head = listing_head(session)
        # Rows die only with a change (a withdrawal, an expiry: both logged) or a reader
        # leaving: a pass with neither takes no write lock and scans nothing.
        if (head, readers) != self._pruned_at:
            with Session(self.rt.engine) as session, session.begin():
                pruned = prune(session, readers, now)
            self._pruned_at = (head, readers)
            if pruned:
                logger.info("summary store: pruned %d rows", pruned)
        out = []
        ms = membership(self.rt.engine)
        active = self.rt.policy.active_or_none()  # once, not once per reader
        text = active.text if active is not None else ""
        for reader in readers:
            view = reader_view(self.rt, reader, compiled, version, ms, text)
            if self._done.get(reader) != (view.digest, head):
                out.append((reader, view.digest, head))
        return out

    def step(self, reader: str, after: str) -> tuple[str, int] | None:
        """Sign the next batch of ``reader``'s missing or outdated summaries after listing
        id ``after``, in one transaction: (the last id done, how many), or None when none
        are left."""
        version, compiled = self.rt.policy.compiled()
        view = reader_view(self.rt, reader, compiled, version)
        now = self.rt.clock()
        t = SignedSummaryRow
        with Session(self.rt.engine) as session, session.begin():
            stmt = (
                select(
                    ListingRow.id, ListingRow.version, ListingRow.content_sha256, ListingRow.record
                )
                .outerjoin(t, and_(t.reader == reader, t.listing_id == ListingRow.id))
                .where(
                    ListingRow.id > after,
                    ListingRow.withdrawn.is_(False),
                    ListingRow.expires > now,
                    or_(
                        t.listing_id.is_(None),
                        t.version != ListingRow.version,
                        t.content_sha256 != ListingRow.content_sha256,
                        t.digest != view.digest,
                    ),
                )
                .order_by(ListingRow.id)
                .limit(self.batch)
            )
            rows = session.execute(stmt).all()
            if not rows:
                return None
            made = []
            for lid, lversion, sha, text in rows:
                obj, data, code = make_summary(
                    self.rt, json.loads(text), view.audience, compiled, version, now
                )
                consent = bool(obj and obj["listing"]["rights"].get("name_logo_consent"))
                made.append(
                    entry(
                        reader,
                        lid,
                        version=lversion,
                        content_sha256=sha,
                        digest=view.digest,
                        ts=now,
                        consent=consent,
                        code=code,
                        body=data,
                    )
                )
            save(session, made)
            return str(rows[-1][0]), len(made)

    def run_sync(self) -> int:
        """A whole pass in this thread (the CLI, benches, tests): how many were signed."""
        done = 0
        for reader, digest, head in self.plan():
            step = self.step(reader, "")
            while step is not None:
                done += step[1]
                step = self.step(reader, step[0])
            self._done[reader] = (digest, head)
        return done

    async def run(self, blocking: Callable[..., Any]) -> None:
        """A whole pass, each batch through ``blocking`` (the runtime's ``run``)."""
        for reader, digest, head in await blocking(self.plan):
            step = await blocking(self.step, reader, "")
            while step is not None:
                step = await blocking(self.step, reader, step[0])
            self._done[reader] = (digest, head)
