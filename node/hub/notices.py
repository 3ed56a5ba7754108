"""Matching at the hub and the match notices it sends (DESIGN 9).

The hub keeps one matcher over everything it holds: members' summaries (their views for
the hub) and its own listings as its own policy shows them to itself, so that a private
or bilateral hub listing is matched no more than a member's would be. After each applied
page the changed listings are re-matched and retracted ones removed at once; every new
(listing, counterpart) pair in a top 10 becomes a signed notice in the hub's feed for the
member whose listing matched, if that member may know of the counterpart at all
(``node.hub.notice_content`` says what a notice may tell). ``notices_sent`` has a row for
(reader, own listing, counterpart) exactly when a notice naming that counterpart went to
that reader (rows for the hub's own listings record its matches; it sends itself none).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.hub.notice_content import Knowable, held_knowable, match_notice, own_knowable
from node.services.audiences import Membership, audience_of, membership
from node.services.feed import post_to_outbox
from node.storage.models import ListingRow, NoticeSentRow, RemoteListingRow
from policies.compiled import CompiledPolicy
from policies.evaluate import evaluate
from protocol.countries import COUNTRY_NAMES
from protocol.signing import sign_object

if TYPE_CHECKING:
    from node.matching.match import Match
    from node.matching.matcher import Matcher
    from node.runtime import NodeRuntime

TOP_K = 10
MIN_SCORE = 0.2
NOTICE_BATCH = 100  # pairs per transaction
MATCHED = frozenset({"tech_offer", "tech_request", "expert"})
Ref = tuple[str, str]
Stamp = tuple[int, ...]
Holding = tuple[Stamp, dict[str, Any]]  # the view is {} when unchanged since last time


class MatchingService:
    def __init__(self, rt: NodeRuntime, encoder: Any = None) -> None:
        from node.matching.matcher import Matcher

        self.rt = rt
        self.matcher: Matcher = Matcher(encoder=encoder)
        self.versions: dict[Ref, Stamp] = {}
        # The hub's own listings its policy keeps from itself, at the stamp last evaluated.
        self.hidden: dict[Ref, Stamp] = {}
        self.lock = threading.Lock()
        # One re-match at a time: two pulls ending together would both see the same new
        # pairs and insert the same notices_sent rows (unique violation, or deadlock).
        self.sync_lock = threading.Lock()

    # -- keeping the matcher current -------------------------------------------------
    def _holdings(self) -> dict[Ref, Holding]:
        rt = self.rt
        now = rt.clock()
        out: dict[Ref, Holding] = {}
        with Session(rt.engine) as session:
            rows = session.execute(
                select(
                    RemoteListingRow.origin,
                    RemoteListingRow.listing_id,
                    RemoteListingRow.version,
                    RemoteListingRow.item_ts,
                    RemoteListingRow.category,
                ).where(RemoteListingRow.expires > now)
            ).all()
            for origin, lid, version, ts, category in rows:
                if category not in MATCHED:
                    continue
                key = (origin, lid)
                if self.versions.get(key) == (version, ts):
                    out[key] = ((version, ts), {})
                    continue
                row = session.get(RemoteListingRow, key)
                if row is not None:
                    out[key] = ((version, ts), json.loads(row.signed_bytes)["listing"])
        out.update(self._own_holdings(now))
        return out

    def _own_holdings(self, now: int) -> dict[Ref, Holding]:
        """The hub's own listings as its policy shows them to itself (the hub's view, as a
        member's listing reaches the matcher as its view for the hub). A record is parsed
        only when it or the policy changed."""
        rt = self.rt
        policy_version, compiled = rt.policy.compiled()
        me = audience_of(rt.node_id, compiled.policy, membership(rt.engine))
        out: dict[Ref, Holding] = {}
        seen: set[Ref] = set()
        with Session(rt.engine) as session:
            own = session.execute(
                select(ListingRow.id, ListingRow.version, ListingRow.updated).where(
                    ListingRow.withdrawn.is_(False),
                    ListingRow.expires > now,
                    ListingRow.category.in_(MATCHED),
                    ListingRow.visibility != "private",
                )
            ).all()
            for lid, version, updated in own:
                key = (rt.node_id, lid)
                seen.add(key)
                stamp = (version, updated, policy_version)
                if self.versions.get(key) == stamp:
                    out[key] = (stamp, {})
                    continue
                if self.hidden.get(key) == stamp:
                    continue
                record = json.loads(
                    session.scalar(select(ListingRow.record).where(ListingRow.id == lid)) or "{}"
                )
                decision = evaluate(record, me, compiled, now)
                if decision.view is None:
                    self.hidden[key] = stamp
                    continue
                self.hidden.pop(key, None)
                out[key] = (stamp, decision.view)
        for key in [k for k in self.hidden if k not in seen]:
            del self.hidden[key]
        return out

    def refresh(self) -> list[Ref]:
        """Bring the matcher up to date; return the listings added or changed."""
        with self.lock:
            holdings = self._holdings()
            for key in [k for k in self.versions if k not in holdings]:
                self.matcher.remove(*key)
                del self.versions[key]
            changed = []
            for key, (stamp, view) in holdings.items():
                if self.versions.get(key) == stamp:
                    continue
                self.matcher.upsert(key[0], view)
                self.versions[key] = stamp
                changed.append(key)
            return changed

    def matches_for(self, ref: Ref, k: int = TOP_K) -> list[Match]:
        with self.lock:
            return list(self.matcher.matches_for(ref[0], ref[1], k=k))

    # -- notices ---------------------------------------------------------------------
    def notify(self, changed: Iterable[Ref]) -> int:
        """Send notices for new pairs among the matches of ``changed`` listings."""
        pairs: list[tuple[Ref, Ref, Match]] = []
        for ref in changed:
            for m in self.matches_for(ref):
                if m.score >= MIN_SCORE:
                    pairs.append((m.request, m.candidate, m))
        sent = 0
        done: set[tuple[str, str, str, str]] = set()  # a pair found from both sides
        rt = self.rt
        now = rt.clock()
        ms = membership(rt.engine)
        _, compiled = rt.policy.compiled()
        # Short transactions: a first match of thousands of listings must not hold the
        # database's write lock for seconds while a pull waits to store its page. A
        # crash between two batches loses nothing: unsent pairs have no notices_sent
        # row, and the re-match at start finds them again.
        for start in range(0, len(pairs), NOTICE_BATCH):
            sent += self._send(pairs[start : start + NOTICE_BATCH], done, ms, compiled, now)
        return sent

    def _send(
        self,
        pairs: list[tuple[Ref, Ref, Match]],
        done: set[tuple[str, str, str, str]],
        ms: Membership,
        compiled: CompiledPolicy,
        now: int,
    ) -> int:
        """Notices for ``pairs`` not notified before: built and signed first, then
        written in one short transaction (a pull or a signed request waiting to write
        is never kept waiting by the signing)."""
        rt = self.rt
        todo: list[tuple[tuple[str, str, str, str], Ref, Ref, Match]] = []
        for request, candidate, match in pairs:
            for own, other in ((request, candidate), (candidate, request)):
                key = (own[0], own[1], other[0], other[1])
                if key not in done:
                    done.add(key)
                    todo.append((key, own, other, match))
        with Session(rt.engine) as session:
            todo = [t for t in todo if session.get(NoticeSentRow, t[0]) is None]
        rows: list[NoticeSentRow] = []
        signed: list[tuple[str, dict[str, Any]]] = []
        for (reader, own_id, cp_owner, cp_id), own, other, match in todo:
            notice = None
            if reader != rt.node_id:  # the hub's own listings: 'cattc matches' on the hub
                notice = self.notice(reader, own, other, match, ms, compiled, now)
                if notice is None:
                    continue  # the reader may not know of the counterpart: nothing is sent
                signed.append((reader, sign_object(notice, rt.node_id, rt.keys.active)))
            rows.append(
                NoticeSentRow(
                    reader=reader,
                    own_id=own_id,
                    cp_owner=cp_owner,
                    cp_id=cp_id,
                    score=float(match.score),
                    at=now,
                )
            )
        if rows:
            with Session(rt.engine) as session, session.begin():
                session.add_all(rows)
                for reader, obj in signed:
                    post_to_outbox(session, reader, obj, now)
        return len(rows)

    def knowable(
        self, reader: str, other: Ref, ms: Membership, compiled: CompiledPolicy, now: int
    ) -> Knowable:
        """What ``reader`` may know of the listing ``other``: the views its owner gives it
        or the public, and what the owner's relay rule lets the hub pass on to it."""
        rt = self.rt
        recipient = audience_of(reader, compiled.policy, ms)
        if other[0] == rt.node_id:
            me = audience_of(rt.node_id, compiled.policy, ms)
            record = rt.listings.get(other[1]).record
            return own_knowable(record, recipient, me, compiled, now)
        with Session(rt.engine) as session:
            row = session.get(RemoteListingRow, other)
            if row is None:
                return Knowable()
            return held_knowable(json.loads(row.signed_bytes), recipient)

    def notice(
        self,
        reader: str,
        own: Ref,
        other: Ref,
        match: Match,
        ms: Membership,
        compiled: CompiledPolicy,
        now: int,
    ) -> dict[str, Any] | None:
        """The unsigned notice to ``reader`` about ``other``, or None if it may not know of
        ``other`` at all."""
        members = {m.node_id: m for m in self.rt.directory.members()}
        country = members[other[0]].country if other[0] in members else None
        where = (
            COUNTRY_NAMES.get(country or "", other[0]) if other[0] != self.rt.node_id else "China"
        )
        return match_notice(
            issuer=self.rt.node_id,
            now_ms=now,
            reader=reader,
            own_id=own[1],
            role="request" if own == match.request else "candidate",
            counterpart=other,
            kind=match.kind,
            where=where,
            score=match.score,
            components=match.components,
            shared_terms=match.shared_terms,
            shared_codes=match.shared_codes,
            knowable=self.knowable(reader, other, ms, compiled, now),
        )

    def after_sync(self) -> int:
        """Re-match what changed and send the new notices (run after each applied page)."""
        with self.sync_lock:
            return self.notify(self.refresh())

    def top(self, k: int = TOP_K) -> dict[Ref, list[Match]]:
        with self.lock:
            return dict(self.matcher.top_matches(k=k))
