"""Matching at the hub and the match notices it sends (DESIGN 9).

The hub keeps one matcher over everything it holds (members' summaries and its own
listings). After each applied page the changed listings are re-matched and retracted
ones removed at once; every new (listing, counterpart) pair in a top 10 becomes a signed
notice in the hub's feed for the member whose listing matched, carrying of the
counterpart only what the counterpart owner's ``relay`` rule lets that member see.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.services.audiences import audience_of, membership
from node.services.feed import post_to_outbox
from node.storage.models import ListingRow, NoticeSentRow, RemoteListingRow
from policies.evaluate import evaluate, relay_view
from policies.model import Relay
from protocol import PROTOCOL_VERSION
from protocol.countries import COUNTRY_NAMES
from protocol.listing import ENVELOPE_FIELDS
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


def own_view(record: dict[str, Any]) -> dict[str, Any]:
    """The hub's own listing as the matcher sees it: every shareable field."""
    return {
        "id": record["id"],
        "category": record["category"],
        "version": record["version"],
        "updated": record["updated"],
        "expires": record["expires"],
        "fields": {k: v for k, v in record.items() if k not in ENVELOPE_FIELDS},
        "rights": record["rights"],
    }


class MatchingService:
    def __init__(self, rt: NodeRuntime, encoder: Any = None) -> None:
        from node.matching.matcher import Matcher

        self.rt = rt
        self.matcher: Matcher = Matcher(encoder=encoder)
        self.versions: dict[Ref, tuple[int, int]] = {}
        self.relays: dict[Ref, dict[str, Any] | None] = {}
        self.lock = threading.Lock()
        # One re-match at a time: two pulls ending together would both see the same new
        # pairs and insert the same notices_sent rows (unique violation, or deadlock).
        self.sync_lock = threading.Lock()

    # -- keeping the matcher current -------------------------------------------------
    def _holdings(self) -> dict[Ref, tuple[tuple[int, int], dict[str, Any], dict[str, Any] | None]]:
        rt = self.rt
        now = rt.clock()
        out: dict[Ref, tuple[tuple[int, int], dict[str, Any], dict[str, Any] | None]] = {}
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
                    out[key] = ((version, ts), {}, None)
                    continue
                row = session.get(RemoteListingRow, key)
                if row is not None:
                    obj = json.loads(row.signed_bytes)
                    out[key] = ((version, ts), obj["listing"], obj["policy"].get("relay"))
        # The hub's own listings: read versions only; parse a record only when it changed.
        with Session(rt.engine) as session:
            own = session.execute(
                select(ListingRow.id, ListingRow.version, ListingRow.updated).where(
                    ListingRow.withdrawn.is_(False),
                    ListingRow.expires > now,
                    ListingRow.category.in_(MATCHED),
                )
            ).all()
            for lid, version, updated in own:
                key = (rt.node_id, lid)
                stamp = (version, updated)
                view: dict[str, Any] = {}
                if self.versions.get(key) != stamp:
                    record = session.scalar(select(ListingRow.record).where(ListingRow.id == lid))
                    view = own_view(json.loads(record or "{}"))
                out[key] = (stamp, view, None)
        return out

    def refresh(self) -> list[Ref]:
        """Bring the matcher up to date; return the listings added or changed."""
        with self.lock:
            holdings = self._holdings()
            for key in [k for k in self.versions if k not in holdings]:
                self.matcher.remove(*key)
                del self.versions[key]
                self.relays.pop(key, None)
            changed = []
            for key, (stamp, view, relay) in holdings.items():
                if self.versions.get(key) == stamp:
                    continue
                self.matcher.upsert(key[0], view)
                self.versions[key] = stamp
                self.relays[key] = relay
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
        ms: Any,
        compiled: Any,
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
            if reader == rt.node_id:
                continue  # the hub's own listings: shown by 'cattc matches' on the hub
            notice = self.notice(reader, own, other, match, ms, compiled, now)
            signed.append((reader, sign_object(notice, rt.node_id, rt.keys.active)))
        if rows:
            with Session(rt.engine) as session, session.begin():
                session.add_all(rows)
                for reader, obj in signed:
                    post_to_outbox(session, reader, obj, now)
        return len(rows)

    def counterpart_fields(self, reader: str, other: Ref, ms: Any, compiled: Any) -> dict[str, Any]:
        rt = self.rt
        recipient = audience_of(reader, compiled.policy, ms)
        if other[0] == rt.node_id:
            # The hub owns the counterpart: its own rule for itself says what it relays.
            record = rt.listings.get(other[1]).record
            self_audience = audience_of(rt.node_id, compiled.policy, ms)
            rule = compiled.lookup(self_audience, record["category"])
            decision = evaluate(record, self_audience, compiled, rt.clock())
            if rule is None or decision.view is None:
                return {}
            return relay_view(decision.view["fields"], rule.rule.relay, recipient) or {}
        relay = self.relays.get(other)
        if not relay:
            return {}
        with Session(rt.engine) as session:
            row = session.get(RemoteListingRow, other)
            if row is None:
                return {}
            fields = json.loads(row.signed_bytes)["listing"]["fields"]
        rule = Relay(tuple(relay.get("to", ())), tuple(relay.get("fields", ())))
        return relay_view(fields, rule, recipient) or {}

    def notice(
        self, reader: str, own: Ref, other: Ref, match: Match, ms: Any, compiled: Any, now: int
    ) -> dict[str, Any]:
        members = {m.node_id: m for m in self.rt.directory.members()}
        country = members[other[0]].country if other[0] in members else None
        where = (
            COUNTRY_NAMES.get(country or "", other[0]) if other[0] != self.rt.node_id else "China"
        )
        return {
            "type": "match_notice",
            "v": PROTOCOL_VERSION,
            "issuer": self.rt.node_id,
            "ts": now,
            "audience": reader,
            "own_listing": {
                "id": own[1],
                "role": "request" if own == match.request else "candidate",
            },
            "counterpart": {
                "owner": other[0],
                "listing_id": other[1],
                "kind": match.kind,
                "descriptor": f"a listing held by the center of {where}",
                "fields": self.counterpart_fields(reader, other, ms, compiled),
            },
            "score": round(float(match.score), 4),
            "explanation": {
                "components": {k: round(float(v), 4) for k, v in match.components.items()},
                "shared_terms": list(match.shared_terms),
                "shared_codes": list(match.shared_codes),
            },
        }

    def after_sync(self) -> int:
        """Re-match what changed and send the new notices (run after each applied page)."""
        with self.sync_lock:
            return self.notify(self.refresh())

    def top(self, k: int = TOP_K) -> dict[Ref, list[Match]]:
        with self.lock:
            return dict(self.matcher.top_matches(k=k))
