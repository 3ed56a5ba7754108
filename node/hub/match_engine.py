"""Matching at the hub and the match notices it sends (DESIGN 9): the work itself.

The hub keeps one matcher over everything it holds: members' summaries (their views for
the hub) and its own listings as its own policy shows them to itself, so that a private
or bilateral hub listing is matched no more than a member's would be. After each applied
page the changed listings are re-matched and retracted ones removed at once; every new
(listing, counterpart) pair in a top 10 becomes a signed notice in the hub's feed for the
member whose listing matched, if that member may know of the counterpart at all
(``node.hub.notice_content`` says what a notice may tell). ``notices_sent`` has a row for
(reader, own listing, counterpart) exactly when a notice naming that counterpart went to
that reader (rows for the hub's own listings record its matches; it sends itself none).

What is done survives a stop: ``match_stamps`` holds, per listing, the stamp (version,
scoring and model) at which its matches were found, written in the same transaction as
their notices. A held listing whose stamp differs is still to do, so a re-match cut short
resumes at the next start, and only a change of scoring or model re-matches everything.

What a pass reads follows what changed: each applied page queues its changed listings
(``node.hub.match_queue``) and the worker's engine takes in those alone; its first
refresh restores the matcher from its last snapshot (``node.hub.match_snapshot``) and
parses only the summaries that changed since, instead of every summary held.
``MatchEngine`` is synchronous and lives in one process: the hub's matching worker
(``node.hub.match_worker``) or a CLI command.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, func, insert, select, tuple_
from sqlalchemy.orm import Session

from node.hub import match_queue, match_snapshot
from node.hub.notice_content import (
    Knowable,
    held_knowable,
    knowable_part,
    match_notice,
    own_knowable,
)
from node.matching.calibration import scale_of
from node.matching.model_choice import e5_engine_name
from node.services.audiences import Membership, audience_of, membership
from node.services.feed import post_many_to_outbox
from node.storage.models import (
    ChangeRow,
    ListingRow,
    MatchStampRow,
    NoticeSentRow,
    RemoteListingRow,
)
from node.storage.ref_filter import refs_in
from policies.compiled import CompiledPolicy
from policies.evaluate import evaluate
from policies.model import Audience
from protocol.countries import COUNTRY_NAMES
from protocol.signing import sign_object

if TYPE_CHECKING:
    from node.matching.match import Match
    from node.matching.matcher import Matcher
    from node.matching.reftable import StampTable
    from node.runtime import NodeRuntime

logger = logging.getLogger(__name__)

TOP_K = 10
DAY_MS = 86_400_000
MIN_SCORE = 0.2
# Listings whose matches are found and notified per transaction, at most: a first match
# of thousands of listings never holds the database's write lock for long.
REFS_PER_TXN = 100
# About how long one such transaction's matching takes: fewer listings per transaction
# when each costs more (a large catalogue), since a retraction (``drop``) waits for the
# one in progress. The first transaction takes FIRST_REFS, the next ones as many as fit.
CHUNK_S = 0.5
FIRST_REFS = 8
# Bumped when scoring changes in a way that should re-match everything once.
# 2: inferred sectors (node.matching.infer); 3: a title in one language encoded, e5's span;
# 4: no character n-gram space (with the model on it added nothing on the dev split, and
# it held a third of the matcher's structures).
# The model's calibration is part of the scoring identity too (``calibration.scale_of``).
SCORING_VERSION = "4"
MATCHED = frozenset({"tech_offer", "tech_request", "expert"})
LOAD_BATCH = 500  # summaries parsed and added to the matcher between two checkpoints
# Seconds between two snapshots of the matcher (the first right after a load).
SNAPSHOT_EVERY_S = 600.0
# Seconds after which the hub's own listings are read again though their change log and
# policy did not move (a change of the directory's groups changes what the hub may see).
OWN_RESCAN_S = 300.0
Ref = tuple[str, str]
Stamp = tuple[int, ...]
Holding = tuple[Stamp, dict[str, Any]]  # the view is {} when unchanged since last time
Checkpoint = Callable[[], None]
# Summaries whose notice-relevant part one pass keeps (a counterpart in many top lists is
# read once per pass, not once per batch). Each is a parsed dict of a few KB: 50,000 of
# them made 150 MB of the worker's memory; 5,000 cost the first re-match 6% more time.
KNOWABLE_CACHE = 5_000
# ... and at most those whose signed summaries came to KNOWABLE_BYTES of JSON: a member may
# send summaries of up to a feed item's size (MAX_ITEM_BYTES), and 5,000 of the largest
# would have held gigabytes. Today's summaries are a few KB, so the count binds first.
KNOWABLE_BYTES = 32 * 1024 * 1024
# Seconds of encoding per pass (new pages wait for at most one such stretch before their
# re-match begins).
ENCODE_BUDGET_S = 5.0


def encode_batch() -> int:
    """Listings encoded between two checkpoints: a withdrawal's drop waits for half a
    second of encoding at most. e5 in numpy takes ~0.06 s a listing in a batch of 8 (and
    expands its weights once a batch, ~40 ms); the wheel's C engine ~0.13 s."""
    return 8 if e5_engine_name() == "numpy" else 4


def scoring_identity(model: str) -> str:
    """What a listing's matches were found with: the scoring version, the model and how
    its cosines count (a new calibration re-matches, like a new version)."""
    if model == "lexical":
        return f"{SCORING_VERSION}/{model}"
    zero, span = scale_of(model)
    return f"{SCORING_VERSION}/{model}/{zero:g}/{span:g}"


def _nothing() -> None:
    return None


def signed_texts(engine: Engine, keys: list[Ref]) -> dict[Ref, str]:
    """The signed bytes of the held summaries ``keys`` (those still held), by key."""
    if not keys:
        return {}
    with Session(engine) as session:
        rows = session.execute(
            select(
                RemoteListingRow.origin,
                RemoteListingRow.listing_id,
                RemoteListingRow.signed_bytes,
            ).where(refs_in(RemoteListingRow.origin, RemoteListingRow.listing_id, keys))
        ).all()
    return {(origin, lid): text for origin, lid, text in rows}


class MatchEngine:
    """The matcher over what the hub holds, kept current by ``after_sync``. ``checkpoint``
    arguments are called between batches (the worker answers queries there)."""

    def __init__(
        self, rt: NodeRuntime, encoder: Any = None, *, consumes_queue: bool = False
    ) -> None:
        """``consumes_queue``: this engine is the hub's one matcher (its worker), which
        takes in changes from ``match_queue`` and deletes what it took; any other (a CLI
        command's, a test's) reads everything held at each refresh and leaves the queue."""
        from node.matching.matcher import Matcher
        from node.matching.reftable import StampTable

        self.rt = rt
        self.consumes_queue = consumes_queue
        # The hub's worker encodes in the background: a listing is matched lexically at
        # once and with its vector when ``encode`` has reached it. Texts are read back from
        # the database when they are needed (``_views``), not kept for every listing.
        self.matcher: Matcher = Matcher(
            encoder=encoder, defer_encoding=consumes_queue, text_source=self._views
        )
        # What it holds, at which stamp: columns, not a dict (~350 bytes a listing).
        self.versions: StampTable = StampTable()
        # The hub's own listings held, and those its policy keeps from itself, at the
        # stamp last evaluated.
        self.own: set[Ref] = set()
        self.hidden: dict[Ref, Stamp] = {}
        # Held listings whose matches are not yet found at their current stamp, and
        # listings no longer held whose stamps are still to be deleted.
        self.todo: set[Ref] = set()
        self.forget: set[Ref] = set()
        self.loaded = False  # the first refresh loads everything held; later ones, changes
        self.seen_until = 0  # the clock at the last refresh: what expired since is looked up
        self.own_mark: tuple[int, int] | None = None  # (change log head, policy) last scanned
        self.own_scanned = 0.0  # time.monotonic() of the last scan of the own listings
        self.reads = 0  # held summaries read (a pass reads what changed, not what is held)
        self.unsaved = 0  # changes to the matcher since its last snapshot
        self.held_back = 0  # notices not sent: their listing had its day's notices
        self.saved_at: float | None = None  # time.monotonic() of the last snapshot
        self.left = 0  # listings still to do after the last after_sync
        model = self.matcher.semantic.model if self.matcher.semantic.enabled else "lexical"
        self._scoring = scoring_identity(model or "lexical")
        # Re-entrant: a query answered at a checkpoint of a re-match, in the same thread.
        self.lock = threading.RLock()
        # One re-match at a time: two pulls ending together would both see the same new
        # pairs and insert the same notices_sent rows (unique violation, or deadlock).
        self.sync_lock = threading.Lock()

    @property
    def scoring(self) -> str:
        return self._scoring

    @scoring.setter
    def scoring(self, value: str) -> None:
        """A new scoring (or model): every listing whose stamp says otherwise is to do."""
        self._scoring = value
        if self.loaded:
            self._recount()

    # -- keeping the matcher current -------------------------------------------------
    def _self_audience(self) -> tuple[int, CompiledPolicy, Audience]:
        """The policy in force (and its version), and the hub as an audience of it: the hub's
        own listings reach its matcher as its policy shows them to itself, as a member's
        listing reaches it as its view for the hub."""
        policy_version, compiled = self.rt.policy.compiled()
        me = audience_of(self.rt.node_id, compiled.policy, membership(self.rt.engine))
        return policy_version, compiled, me

    def _own_holdings(self, now: int) -> dict[Ref, Holding]:
        """The hub's own listings as its policy shows them to itself (``_self_audience``).
        A record is parsed only when it or the policy changed."""
        rt = self.rt
        policy_version, compiled, me = self._self_audience()
        out: dict[Ref, Holding] = {}
        seen: set[Ref] = set()
        with Session(rt.engine) as session:
            self.own_mark = (_change_head(session), policy_version)
            self.own_scanned = time.monotonic()
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

    def _own_due(self, now: int) -> bool:
        """Whether the own listings are to be read again: the change log or the policy
        moved, one of them expired since the last pass, or ``OWN_RESCAN_S`` passed (a
        change in the directory's groups, or a change logged out of order)."""
        if self.own_mark is None or time.monotonic() - self.own_scanned > OWN_RESCAN_S:
            return True
        policy_version, _ = self.rt.policy.compiled()
        with Session(self.rt.engine) as session:
            if (_change_head(session), policy_version) != self.own_mark:
                return True
            expired = session.scalar(
                select(ListingRow.id)
                .where(ListingRow.expires > self.seen_until, ListingRow.expires <= now)
                .limit(1)
            )
        return expired is not None

    def _take_own(self, now: int) -> list[Ref]:
        """Bring the hub's own listings up to date; the keys added or changed."""
        own = self._own_holdings(now)
        changed: list[Ref] = []
        with self.lock:
            for key in [k for k in self.own if k not in own]:
                self._drop(key)
            for key, (stamp, view) in own.items():
                if self.versions.get(key) != stamp:
                    self.matcher.upsert(key[0], view)
                    self._held(key, stamp)
                    changed.append(key)
        return changed

    def _held(self, key: Ref, stamp: Stamp) -> None:
        """Under ``lock``: ``key`` is in the matcher at ``stamp``, its matches to find."""
        self.versions[key] = stamp
        self.unsaved += 1
        if self.loaded:  # at the first scan, match_stamps tells what is to do (_recount)
            self.todo.add(key)
        self.forget.discard(key)
        if key[0] == self.rt.node_id:
            self.own.add(key)

    def _drop(self, key: Ref) -> None:
        """Under ``lock``: ``key`` leaves the matcher (retracted, expired, hidden)."""
        if key in self.versions:
            self.matcher.remove(*key)
            del self.versions[key]
            self.forget.add(key)
            self.unsaved += 1
        self.todo.discard(key)
        self.own.discard(key)

    def refresh(self, checkpoint: Checkpoint = _nothing) -> list[Ref]:
        """Bring the matcher up to date; return the listings added or changed. The first
        refresh reads everything held; later ones of the queue's consumer take in only
        what the pages applied since have queued (``node.hub.match_queue``), what expired
        since, and the hub's own listings when they changed."""
        if not (self.loaded and self.consumes_queue):
            return self._scan(checkpoint)
        rt = self.rt
        now = rt.clock()
        changed: list[Ref] = []
        for batch in match_queue.batches(rt.engine):
            keys = list(dict.fromkeys(ref for _, ref in batch if ref[0] != rt.node_id))
            changed.extend(self._take(keys, now, checkpoint))
            match_queue.drop(rt.engine, [i for i, _ in batch])
        if now > self.seen_until:
            with Session(rt.engine) as session:
                expired = session.execute(
                    select(RemoteListingRow.origin, RemoteListingRow.listing_id).where(
                        RemoteListingRow.expires > self.seen_until,
                        RemoteListingRow.expires <= now,
                    )
                ).all()
            with self.lock:
                for origin, lid in expired:
                    self._drop((origin, lid))
        if self._own_due(now):
            changed.extend(self._take_own(now))
        self.seen_until = now
        return changed

    def _take(self, keys: list[Ref], now: int, checkpoint: Checkpoint) -> list[Ref]:
        """The held summaries ``keys`` as they are now, into the matcher (or out of it:
        purged, expired, not matched), ``LOAD_BATCH`` at a time."""
        changed: list[Ref] = []
        for start in range(0, len(keys), LOAD_BATCH):
            chunk = keys[start : start + LOAD_BATCH]
            with Session(self.rt.engine) as session:
                rows = session.execute(
                    select(
                        RemoteListingRow.origin,
                        RemoteListingRow.listing_id,
                        RemoteListingRow.version,
                        RemoteListingRow.item_ts,
                        RemoteListingRow.expires,
                        RemoteListingRow.category,
                        RemoteListingRow.signed_bytes,
                    ).where(refs_in(RemoteListingRow.origin, RemoteListingRow.listing_id, chunk))
                ).all()
            self.reads += len(rows)
            found = {(row.origin, row.listing_id): row for row in rows}
            batch: list[tuple[Ref, Stamp, dict[str, Any]]] = []
            with self.lock:
                for key in chunk:
                    row = found.get(key)
                    if row is None or row.expires <= now or row.category not in MATCHED:
                        self._drop(key)
                        continue
                    stamp: Stamp = (row.version, row.item_ts)
                    if self.versions.get(key) != stamp:
                        batch.append((key, stamp, _listing_view(row.signed_bytes)))
                self.matcher.upsert_many((key[0], view) for key, _, view in batch)
                for key, stamped, _ in batch:
                    self._held(key, stamped)
                    changed.append(key)
            checkpoint()
        return changed

    def _scan(self, checkpoint: Checkpoint) -> list[Ref]:
        """Everything held, into the matcher: keys and versions read in key order
        ``LOAD_BATCH`` at a time (short queries), the summaries whose version differs
        from the matcher's parsed and added (one batch of parsed views in memory at once),
        those no longer held removed. The queue's consumer starts from its last snapshot
        (``node.hub.match_snapshot``) when there is one, so that only what changed since
        is parsed. At the first scan, what is left to do comes from ``match_stamps``, and
        the queued changes seen before it began are covered by it and dropped (those
        queued meanwhile are taken at the next refresh)."""
        rt = self.rt
        now = rt.clock()
        first = not self.loaded
        covered: list[int] = []
        if first and self.consumes_queue:
            covered = match_queue.ids(rt.engine)
            self._restore()
        changed = self._take_own(now)
        seen: set[Ref] = set()
        after: Ref = ("", "")
        while True:
            # Nothing in the matcher yet: every summary is parsed, read with its key.
            columns = [
                RemoteListingRow.origin,
                RemoteListingRow.listing_id,
                RemoteListingRow.version,
                RemoteListingRow.item_ts,
            ]
            if not self.versions:
                columns.append(RemoteListingRow.signed_bytes)
            with Session(rt.engine) as session:
                rows: Sequence[Any] = session.execute(
                    select(*columns)
                    .where(
                        tuple_(RemoteListingRow.origin, RemoteListingRow.listing_id) > after,
                        RemoteListingRow.expires > now,
                        RemoteListingRow.category.in_(MATCHED),
                    )
                    .order_by(RemoteListingRow.origin, RemoteListingRow.listing_id)
                    .limit(LOAD_BATCH)
                ).all()
            if not rows:
                break
            after = (rows[-1][0], rows[-1][1])
            texts: dict[Ref, str] = {}
            stamps: dict[Ref, Stamp] = {}
            for row in rows:
                key: Ref = (row[0], row[1])
                seen.add(key)
                stamp: Stamp = (row[2], row[3])
                if self.versions.get(key) != stamp:
                    stamps[key] = stamp
                    if len(row) > 4:
                        texts[key] = row[4]
            del rows
            if stamps and not texts:
                texts = self._texts(list(stamps))
            self.reads += len(texts)
            batch = [(key, stamps[key], _listing_view(text)) for key, text in texts.items()]
            del texts
            with self.lock:
                self.matcher.upsert_many((key[0], view) for key, _, view in batch)
                for ref, held, _ in batch:
                    self._held(ref, held)
                    changed.append(ref)
            del batch
            checkpoint()
        with self.lock:
            for key in [k for k in self.versions if k not in seen and k not in self.own]:
                self._drop(key)
        self.loaded = True
        self.seen_until = now
        if first:
            self._recount()
            match_queue.drop(rt.engine, covered)
            self._reuse_vectors()
        return changed

    def _reuse_vectors(self) -> None:
        """Listings waiting for their vector get the one kept for their text, if any
        (``vector_file``): after an upgrade discarded the snapshot, only new texts are
        encoded again."""
        from node.hub import vector_file  # numpy: the worker's, never the server's

        model = self.matcher.semantic.model
        if not self.consumes_queue or model is None or not self.matcher.pending_count():
            return
        held = vector_file.load(self.rt.data_dir, model)
        if held is None:
            return
        with self.lock:
            reused = self.matcher.reuse_vectors(held)
        del held
        logger.info(
            "vectors kept for %d listings reused; %d to encode",
            reused,
            self.matcher.pending_count(),
        )

    def _texts(self, keys: list[Ref]) -> dict[Ref, str]:
        """The signed bytes of the held summaries ``keys`` (those still held)."""
        return signed_texts(self.rt.engine, keys)

    def _views(self, refs: Sequence[Ref]) -> dict[Ref, dict[str, Any]]:
        """The listings ``refs`` as the matcher is given them, read back from the database
        (its ``text_source``): a member's summary's listing, and the hub's own listings as
        its policy shows them to the hub; those no longer there are left out."""
        rt = self.rt
        remote = [ref for ref in refs if ref[0] != rt.node_id]
        own = [lid for origin, lid in refs if origin == rt.node_id]
        out = {key: _listing_view(text) for key, text in self._texts(remote).items()}
        if not own:
            return out
        _, compiled, me = self._self_audience()
        now = rt.clock()
        with Session(rt.engine) as session:
            rows = session.execute(
                select(ListingRow.id, ListingRow.record).where(ListingRow.id.in_(own))
            ).all()
        for lid, record in rows:
            view = evaluate(json.loads(record or "{}"), me, compiled, now).view
            if view is not None:
                out[(rt.node_id, lid)] = view
        return out

    # -- the snapshot ------------------------------------------------------------------
    def _restore(self) -> None:
        """The matcher and what it holds as the last snapshot left them, if it fits."""
        head = match_snapshot.header(self.rt.node_id, self.scoring)
        state = match_snapshot.load(self.rt.data_dir, head)
        if state is None:
            return
        with self.lock:
            match_snapshot.restore_matcher(self.matcher, state["matcher"])
            self.versions = state["versions"]
            self.own = state["own"]
            self.hidden = state["hidden"]
        self.saved_at = time.monotonic()
        logger.info("matcher restored from its snapshot: %d listings", len(self.versions))

    def save(self, *, force: bool = False) -> bool:
        """Write the snapshot when the matcher changed since the last one: at once after
        a load from the database, else at most every ``SNAPSHOT_EVERY_S`` (a stop in
        between loses nothing: the next start takes in what changed since)."""
        if not self.consumes_queue or not self.loaded or not self.unsaved:
            return False
        if not force and self.saved_at is not None:
            if time.monotonic() - self.saved_at < SNAPSHOT_EVERY_S:
                return False
        head = match_snapshot.header(self.rt.node_id, self.scoring)
        with self.lock:
            state = {
                "matcher": match_snapshot.matcher_state(self.matcher),
                "versions": self.versions,
                "own": self.own,
                "hidden": self.hidden,
            }
            ok = match_snapshot.save(self.rt.data_dir, head, state)
            model = self.matcher.semantic.model
            if ok and model is not None:
                from node.hub import vector_file

                ok = vector_file.save(self.rt.data_dir, model, self.matcher.held_vectors())
        self.saved_at = time.monotonic()
        if ok:
            self.unsaved = 0
        return ok

    def _recount(self) -> None:
        """What is left to do and to forget, from ``match_stamps`` (at load, and when the
        scoring changes)."""
        with Session(self.rt.engine) as session:
            rows = session.execute(
                select(MatchStampRow.owner, MatchStampRow.listing_id, MatchStampRow.stamp)
            ).all()
        done = {(owner, lid): stamp for owner, lid, stamp in rows}
        del rows
        with self.lock:
            self.todo = {ref for ref in self.versions if done.get(ref) != self.stamp(ref)}
            self.forget = {ref for ref in done if ref not in self.versions}

    def drop(self, refs: Iterable[Ref]) -> int:
        """Take ``refs`` (retracted, as a pull just applied) out of the matcher and every
        match list now, without waiting for the pass that takes in the queue; how many
        were held. Their stamps are deleted by the next pass."""
        with self.lock:
            gone = [ref for ref in dict.fromkeys(refs) if ref in self.versions]
            for ref in gone:
                self._drop(ref)
        return len(gone)

    def matches_for(self, ref: Ref, k: int = TOP_K) -> list[Match]:
        with self.lock:
            return list(self.matcher.matches_for(ref[0], ref[1], k=k))

    def top(self, k: int = TOP_K) -> dict[Ref, list[Match]]:
        with self.lock:
            return dict(self.matcher.top_matches(k=k))

    def best(self, limit: int, k: int = TOP_K) -> list[Match]:
        """The best ``limit`` pairs of the top ``k`` lists, best first (``best_matches``)."""
        with self.lock:
            return self.matcher.best_matches(limit, k=k)

    # -- what is left to do ------------------------------------------------------------
    def stamp(self, ref: Ref) -> str:
        return ":".join([self.scoring, *(str(part) for part in self.versions[ref])])

    def pending(self) -> list[Ref]:
        """Held listings whose matches were not yet found at their current stamp."""
        with self.lock:
            return sorted(self.todo)

    def _forget_gone(self) -> None:
        """Stamps of listings no longer held (retracted, expired, hidden) are dropped."""
        with self.lock:
            gone = sorted(self.forget)
        for start in range(0, len(gone), LOAD_BATCH):
            chunk = gone[start : start + LOAD_BATCH]
            with Session(self.rt.engine) as session, session.begin():
                session.execute(
                    delete(MatchStampRow).where(
                        refs_in(MatchStampRow.owner, MatchStampRow.listing_id, chunk)
                    )
                )
            with self.lock:
                self.forget.difference_update(chunk)

    def status(self) -> dict[str, Any]:
        semantic = self.matcher.semantic
        with self.lock:
            return {
                "held": len(self.versions),
                "pending": len(self.todo),
                "notices_held_back": self.held_back,
                "scoring": self.scoring,
                "semantic": {
                    "enabled": semantic.enabled,
                    "model": semantic.model,
                    "reason": semantic.reason,
                    "to_encode": self.matcher.pending_count(),
                },
            }

    # -- vectors -----------------------------------------------------------------------
    def encode(self, checkpoint: Checkpoint = _nothing, budget_s: float = ENCODE_BUDGET_S) -> int:
        """Give listings held without their vector theirs, ``encode_batch()`` at a time, for
        about ``budget_s`` seconds; each is then to do (its matches change). How many."""
        deadline = time.monotonic() + budget_s
        done = 0
        while self.matcher.pending_count() and time.monotonic() < deadline:
            with self.lock:
                refs = self.matcher.encode_pending(encode_batch())
                self.todo.update(ref for ref in refs if ref in self.versions)
                self.unsaved += len(refs)
            done += len(refs)
            checkpoint()
        return done

    # -- notices ---------------------------------------------------------------------
    def notify(
        self,
        changed: Iterable[Ref],
        checkpoint: Checkpoint = _nothing,
        budget_s: float | None = None,
    ) -> int:
        """Send notices for new pairs among the matches of ``changed`` listings, and mark
        each done in the transaction that writes its notices; stop after the batch that
        ends past ``budget_s`` seconds (the rest stays pending)."""
        deadline = None if budget_s is None else time.monotonic() + budget_s
        rt = self.rt
        now = rt.clock()
        _, compiled = rt.policy.compiled()
        ctx = _Context(rt, membership(rt.engine), compiled, now)
        refs = list(changed)
        sent = 0
        # Short transactions: a pull waiting to store its page is never kept waiting long,
        # nor a retraction (checkpoint). A stop between two leaves the rest without their
        # stamps: found again at start.
        start, size = 0, FIRST_REFS
        while start < len(refs):
            chunk = refs[start : start + size]
            start += len(chunk)
            pairs: list[tuple[Ref, Ref, Match]] = []
            with self.lock:
                live = [ref for ref in chunk if ref in self.versions]
                stamps = {ref: self.stamp(ref) for ref in live}
                # Shared terms and codes only for the notices that tell them (_send). The
                # pace is the matching's own, not a wait for the lock.
                began = time.monotonic()
                found = self.matcher.matches_for_many(live, k=TOP_K, explain=False)
                size = chunk_size((time.monotonic() - began) / len(chunk))
            for ref in live:
                pairs.extend(
                    (m.request, m.candidate, m) for m in found[ref] if m.score >= MIN_SCORE
                )
            sent += self._send(pairs, ctx, stamps)
            checkpoint()
            if deadline is not None and time.monotonic() > deadline:
                break
        return sent

    def _send(
        self,
        pairs: list[tuple[Ref, Ref, Match]],
        ctx: _Context,
        stamps: dict[Ref, str],
    ) -> int:
        """Notices for ``pairs`` not notified before: built and signed first, then
        written with ``stamps`` in one short transaction (a pull or a signed request
        waiting to write is never kept waiting by the signing). A pair found from both
        sides in this batch is sent once; one found by an earlier batch has its
        ``notices_sent`` row by now, so memory stays that of one batch."""
        rt = self.rt
        todo: dict[tuple[str, str, str, str], tuple[Ref, Ref, Match]] = {}
        for request, candidate, match in pairs:
            for own, other in ((request, candidate), (candidate, request)):
                todo.setdefault((own[0], own[1], other[0], other[1]), (own, other, match))
        sent_before, today = _already_sent(rt.engine, list(todo), ctx.now - DAY_MS)
        todo = {key: found for key, found in todo.items() if key not in sent_before}
        ctx.load([other for key, (_, other, _) in todo.items() if key[0] != rt.node_id])
        rows: list[dict[str, Any]] = []
        signed: list[tuple[str, dict[str, Any]]] = []
        # Notices about one listing to its owner in a day (``notices_per_listing_per_day``):
        # a member that withdrew its offers and published them again under new ids sent
        # 482 notices to one request in a few rounds, burying its owner's real ones.
        per_day = rt.config.notices_per_listing_per_day
        held: list[tuple[str, str]] = []
        for (reader, own_id, cp_owner, cp_id), (own, other, match) in todo.items():
            if reader != rt.node_id:  # the hub's own listings: 'cattc matches' on the hub
                if today[(reader, own_id)] >= per_day:
                    held.append((reader, own_id))  # not recorded: a later match may tell it
                    continue
                notice = self.notice(reader, own, other, match, ctx)
                if notice is None:
                    continue  # the reader may not know of the counterpart: nothing is sent
                today[(reader, own_id)] += 1
                signed.append((reader, sign_object(notice, rt.node_id, rt.keys.active)))
            rows.append(
                {
                    "reader": reader,
                    "own_id": own_id,
                    "cp_owner": cp_owner,
                    "cp_id": cp_id,
                    "score": float(match.score),
                    "at": ctx.now,
                }
            )
        if held:
            self.held_back += len(held)
            logger.info(
                "held back %d notices: %d listings had their %d of the day (first: %s's %s)",
                len(held),
                len(set(held)),
                per_day,
                *held[0],
            )
        if rows or stamps:
            with Session(rt.engine) as session, session.begin():
                if rows:
                    session.execute(insert(NoticeSentRow), rows)
                post_many_to_outbox(session, signed, ctx.now)
                if stamps:
                    session.execute(
                        delete(MatchStampRow).where(
                            refs_in(MatchStampRow.owner, MatchStampRow.listing_id, stamps.keys())
                        )
                    )
                    session.execute(
                        insert(MatchStampRow),
                        [
                            {"owner": o, "listing_id": lid, "stamp": st}
                            for (o, lid), st in stamps.items()
                        ],
                    )
            with self.lock:
                self.todo.difference_update(stamps)
        return len(rows)

    def knowable(self, reader: str, other: Ref, ctx: _Context) -> Knowable:
        """What ``reader`` may know of the listing ``other``: the views its owner gives it
        or the public, and what the owner's relay rule lets the hub pass on to it."""
        recipient = ctx.audience(reader)
        if other[0] == self.rt.node_id:
            record = ctx.own_record(other[1])
            if record is None:
                return Knowable()
            return own_knowable(
                record, recipient, ctx.audience(self.rt.node_id), ctx.compiled, ctx.now
            )
        summary = ctx.summary(other)
        if summary is None:
            return Knowable()
        return held_knowable(summary, recipient)

    def notice(
        self, reader: str, own: Ref, other: Ref, match: Match, ctx: _Context
    ) -> dict[str, Any] | None:
        """The unsigned notice to ``reader`` about ``other``, or None if it may not know of
        ``other`` at all."""
        knowable = self.knowable(reader, other, ctx)
        if not knowable.named:
            return None
        with self.lock:
            match = self.matcher.explain(match)
        country = ctx.countries.get(other[0])
        where = (
            COUNTRY_NAMES.get(country or "", other[0]) if other[0] != self.rt.node_id else "China"
        )
        return match_notice(
            issuer=self.rt.node_id,
            now_ms=ctx.now,
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
            knowable=knowable,
        )

    def after_sync(
        self,
        checkpoint: Checkpoint = _nothing,
        budget_s: float | None = None,
        encode: bool = True,
    ) -> int:
        """Re-match what changed, and what a stop left undone, and send the new notices;
        with ``budget_s``, notify for about that long at most; then, unless ``encode`` is
        False, encode for a while (``encode``). ``left`` says how many listings are still
        to match, or to encode when encoding was asked for."""
        with self.sync_lock:
            self.refresh(checkpoint)
            self._forget_gone()
            sent = self.notify(self.pending(), checkpoint, budget_s)
            if self.consumes_queue and encode:
                self.encode(checkpoint)
            self.left = len(self.todo) + (self.matcher.pending_count() if encode else 0)
            if self.consumes_queue and not self.left:
                # Once nothing is left to do, the worker holds no weighed matrices (~160 MB
                # at 200,000 listings, rebuilt in ~0.7 s by the next pass), nor does its
                # snapshot; while work is left (a first encoding takes hours), the next
                # pass comes at once and uses them.
                with self.lock:
                    self.matcher.release_caches()
            self.save()
            return sent


def chunk_size(seconds_each: float) -> int:
    """How many listings the next transaction of a notify pass takes, when the last took
    ``seconds_each`` a listing: about ``CHUNK_S`` worth, between 1 and ``REFS_PER_TXN``."""
    if seconds_each <= 0:
        return REFS_PER_TXN
    return max(1, min(REFS_PER_TXN, int(CHUNK_S / seconds_each)))


def _listing_view(signed_bytes: str) -> dict[str, Any]:
    view: dict[str, Any] = json.loads(signed_bytes)["listing"]
    return view


def _change_head(session: Session) -> int:
    """The last position of the hub's own change log (0 when empty)."""
    return int(session.scalar(select(func.max(ChangeRow.seq))) or 0)


def _already_sent(
    engine: Engine, keys: list[tuple[str, str, str, str]], since: int
) -> tuple[set[tuple[str, str, str, str]], Counter[tuple[str, str]]]:
    """Which of ``keys`` (reader, own id, counterpart owner, counterpart id) have a
    ``notices_sent`` row, and how many rows each (reader, own id) has had since
    ``since``: one query per few hundred, by (reader, own id)."""
    out: set[tuple[str, str, str, str]] = set()
    recent: Counter[tuple[str, str]] = Counter()
    owns = sorted({(k[0], k[1]) for k in keys})
    for start in range(0, len(owns), LOAD_BATCH):
        chunk = owns[start : start + LOAD_BATCH]
        with Session(engine) as session:
            rows = session.execute(
                select(
                    NoticeSentRow.reader,
                    NoticeSentRow.own_id,
                    NoticeSentRow.cp_owner,
                    NoticeSentRow.cp_id,
                    NoticeSentRow.at,
                ).where(refs_in(NoticeSentRow.reader, NoticeSentRow.own_id, chunk))
            ).all()
        out.update((row[0], row[1], row[2], row[3]) for row in rows)
        recent.update((row[0], row[1]) for row in rows if row[4] >= since)
    return out, recent


class _Context:
    """What one ``notify`` reads once rather than per notice: the directory's countries,
    the membership and the audiences built from it, and (per batch) the summaries and
    own records that notices are about."""

    def __init__(self, rt: NodeRuntime, ms: Membership, compiled: CompiledPolicy, now: int) -> None:
        self.rt = rt
        self.ms = ms
        self.compiled = compiled
        self.now = now
        self.countries = {m.node_id: m.country for m in rt.directory.members()}
        self._audiences: dict[str, Audience] = {}
        self._summaries: OrderedDict[Ref, dict[str, Any] | None] = OrderedDict()
        self._sizes: dict[Ref, int] = {}  # each kept summary's JSON length
        self._held = 0  # their sum
        self._records: dict[str, dict[str, Any] | None] = {}

    def audience(self, node_id: str) -> Audience:
        if node_id not in self._audiences:
            self._audiences[node_id] = audience_of(node_id, self.compiled.policy, self.ms)
        return self._audiences[node_id]

    def load(self, refs: Iterable[Ref]) -> None:
        """Read what notices may tell of the held summaries ``refs`` (``knowable_part``)
        that this pass has not read yet, in one query per few hundred; at most
        ``KNOWABLE_CACHE`` (and ``KNOWABLE_BYTES`` of their JSON) are kept beyond those
        wanted now, those wanted least recently dropped first."""
        wanted = {r for r in refs if r[0] != self.rt.node_id}
        for ref in wanted & self._summaries.keys():
            self._summaries.move_to_end(ref)  # the least recently wanted leave first
        remote = sorted(wanted - self._summaries.keys())
        while self._summaries and (
            len(self._summaries) + len(remote) > KNOWABLE_CACHE or self._held > KNOWABLE_BYTES
        ):
            ref, _ = self._summaries.popitem(last=False)
            self._held -= self._sizes.pop(ref, 0)
        for start in range(0, len(remote), LOAD_BATCH):
            chunk = remote[start : start + LOAD_BATCH]
            texts = signed_texts(self.rt.engine, chunk)
            for ref in chunk:
                self._summaries[ref] = None
            for ref, text in texts.items():
                self._summaries[ref] = knowable_part(json.loads(text))
                self._sizes[ref] = len(text)
                self._held += len(text)

    def summary(self, ref: Ref) -> dict[str, Any] | None:
        if ref not in self._summaries:
            self.load([ref])
        return self._summaries[ref]

    def own_record(self, listing_id: str) -> dict[str, Any] | None:
        if listing_id not in self._records:
            if len(self._records) >= KNOWABLE_CACHE:
                self._records.clear()
            with Session(self.rt.engine) as session:
                text = session.scalar(select(ListingRow.record).where(ListingRow.id == listing_id))
            self._records[listing_id] = None if text is None else json.loads(text)
        return self._records[listing_id]
