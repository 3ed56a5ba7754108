"""The node's side of sync storage: remote copies with provenance, tombstones, quarantine,
per-peer cursors and run records (implements ``sync.interfaces.SyncStore``).

Ordering rule for one remote listing: a summary replaces the held copy only if its
(version, ts, policy version) is newer (the policy version tells two views of one listing
version apart when the owner's clock did not move between them); a retraction purges the
copy (delete, not hide) and leaves a tombstone, so an older summary arriving later is
refused as stale.

A page is applied in one transaction whose work follows the page, not what is held: one
read per table of the page's listings (their ordering columns only), the rules applied in
memory, then one statement per table and kind of change (insert, update, delete), the
search rows of what changed, and whatever ``page_hooks`` write in the same transaction
(the hub's custody receipt). The result names what changed, for observers
(``sync.interfaces.SyncObserver``) to work from instead of rescanning.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from sqlalchemy import Engine, Row, Table, bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.orm import Session

from node.hub import search_store
from node.storage.insert_ignore import insert_ignore
from node.storage.models import (
    InboxRow,
    PeerStateRow,
    QuarantineRow,
    RemoteListingRow,
    RemoteTombstoneRow,
    SyncRunRow,
)
from protocol.errors import ErrorCode
from sync.interfaces import (
    ApplyResult,
    CursorMoved,
    PeerCursor,
    RejectedItem,
    RunRecord,
    VerifiedItem,
)

REOPENABLE = frozenset({"not_shared", "consent_revoked"})
LISTING_TYPES = frozenset({"listing", "retraction"})
CHUNK = 500  # ids per IN (...) list: within every engine's limit of bound parameters
# Run records are kept this long (the longest history the dashboard shows is 7 days), and
# the older ones deleted once in this many runs: 50 members pulled every minute, or a
# member notifying without pause (a pull a second), no longer grow the table for ever.
RUN_RETENTION_MS = 8 * 24 * 3600 * 1000
PRUNE_RUNS_EVERY = 1000
# Refused items kept of one origin unless set (``max_quarantine_per_member``): each keeps
# up to 100 KB of its text, so at most ~100 MB a member, whatever it sends.
MAX_QUARANTINED = 1000
REMOTE = cast(Table, RemoteListingRow.__table__)
TOMBS = cast(Table, RemoteTombstoneRow.__table__)


def _listing_id(obj: dict[str, Any]) -> str:
    return str(obj["listing"]["id"] if obj["type"] == "listing" else obj["listing_id"])


def _quarantined(origin: str, now: int, item: RejectedItem) -> dict[str, Any]:
    try:
        text = json.dumps(item.obj, ensure_ascii=False, sort_keys=True)[:100_000]
    except (TypeError, ValueError):
        text = repr(item.obj)[:100_000]
    return {
        "origin": origin,
        "received_at": now,
        "code": item.code,
        "message": item.message[:2000],
        "item": text,
    }


def _trim_quarantine(session: Session, origin: str, keep: int) -> None:
    """Delete the origin's quarantined items older than its newest ``keep``."""
    oldest_kept = session.scalar(
        select(QuarantineRow.id)
        .where(QuarantineRow.origin == origin)
        .order_by(QuarantineRow.id.desc())
        .offset(keep - 1)
        .limit(1)
    )
    if oldest_kept is not None:
        session.execute(
            delete(QuarantineRow).where(
                QuarantineRow.origin == origin, QuarantineRow.id < oldest_kept
            )
        )


class Held(NamedTuple):
    """What the apply rules need of a held copy."""

    version: int
    item_ts: int
    policy_version: int
    sha256: str


class Tomb(NamedTuple):
    version: int
    reason: str
    at: int


@dataclass
class AppliedPage:
    """A page as applied, for the hooks that write in its transaction: its result, and
    for each listing id of the page what is held of it now ((version, sha256), or None
    when nothing is)."""

    origin: str
    result: ApplyResult
    held: dict[str, tuple[int, str] | None]
    position: int | None
    now: int


PageHook = Callable[[Session, AppliedPage], None]


@dataclass
class _Page:
    """The listings one page touches: as held before it, and as its items leave them."""

    origin: str
    seq: int
    before: dict[str, Held]
    tombs_before: dict[str, Tomb]
    after: dict[str, Held | None] = field(default_factory=dict)
    tombs: dict[str, Tomb | None] = field(default_factory=dict)
    # Listings held of the origin as the page's items leave them, and how many may be.
    count: int = 0
    limit: int | None = None
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    listings: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    @classmethod
    def read(
        cls,
        session: Session,
        origin: str,
        items: Sequence[VerifiedItem],
        limit: int | None = None,
    ) -> _Page:
        """What is held of the page's listings: one query per table and 500 ids; with a
        ``limit`` of listings per origin, how many are held of ``origin`` too (or a bound
        on it, while the page cannot reach the limit)."""
        seq = session.scalar(select(func.max(REMOTE.c.feed_seq)).where(REMOTE.c.origin == origin))
        ids = list(
            dict.fromkeys(_listing_id(i.obj) for i in items if i.obj["type"] in LISTING_TYPES)
        )
        before: dict[str, Held] = {}
        tombs: dict[str, Tomb] = {}
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            if seq is not None:  # nothing held of this origin: no copy to read
                held = select(
                    REMOTE.c.listing_id,
                    REMOTE.c.version,
                    REMOTE.c.item_ts,
                    REMOTE.c.policy_version,
                    REMOTE.c.bytes_sha256,
                ).where(REMOTE.c.origin == origin, REMOTE.c.listing_id.in_(chunk))
                for lid, *rest in session.execute(held):
                    before[lid] = Held(*rest)
            dead = select(TOMBS.c.listing_id, TOMBS.c.version, TOMBS.c.reason, TOMBS.c.at).where(
                TOMBS.c.origin == origin, TOMBS.c.listing_id.in_(chunk)
            )
            for lid, *rest in session.execute(dead):
                tombs[lid] = Tomb(*rest)
        # Held rows have distinct feed_seq values up to ``seq`` (each item of a page takes
        # the next one), so ``seq`` bounds their number: they are counted (a scan of the
        # origin's rows) only on a page that could reach the limit, not on every page.
        count = int(seq or 0)
        if limit is not None and count + len(items) >= limit:
            count = int(
                session.scalar(
                    select(func.count()).select_from(REMOTE).where(REMOTE.c.origin == origin)
                )
                or 0
            )
        page = cls(origin, int(seq or 0), before, tombs, order=ids, count=count, limit=limit)
        page.after = {lid: before.get(lid) for lid in ids}
        page.tombs = {lid: tombs.get(lid) for lid in ids}
        return page

    def apply(self, item: VerifiedItem, now: int, result: ApplyResult) -> None:
        """The ordering rules for one listing or retraction, in memory."""
        obj = item.obj
        lid = _listing_id(obj)
        held = self.after[lid]
        tomb = self.tombs[lid]
        if obj["type"] == "retraction":
            version = obj["version"]
            if held is not None and version < held.version:
                result.rejected.append(
                    RejectedItem(
                        obj, "stale_version", f"retraction v{version} < held v{held.version}"
                    )
                )
                return
            if held is not None:
                self.after[lid] = None
                self.rows.pop(lid, None)
                self.listings.pop(lid, None)
                self.count -= 1
                result.retracted += 1
            if tomb is None or (version, obj["ts"]) >= (tomb.version, tomb.at):
                self.tombs[lid] = Tomb(version, obj["reason"], obj["ts"])
            return
        listing = obj["listing"]
        version, ts, policy = listing["version"], obj["ts"], obj["policy"]["version"]
        order = (version, ts, policy)
        if held is not None and order <= held[:3]:
            if order == held[:3]:
                result.duplicates += 1
            else:
                result.rejected.append(
                    RejectedItem(
                        obj, "stale_version", f"v{version} is not newer than held v{held.version}"
                    )
                )
            return
        if tomb is not None and not (
            version > tomb.version
            or (version == tomb.version and tomb.reason in REOPENABLE and ts >= tomb.at)
        ):
            result.rejected.append(
                RejectedItem(
                    obj,
                    "stale_version",
                    f"v{version} was retracted ({tomb.reason}) at v{tomb.version}",
                )
            )
            return
        if held is None and self.limit is not None and self.count >= self.limit:
            result.rejected.append(
                RejectedItem(
                    obj,
                    ErrorCode.OVER_LISTING_LIMIT.value,
                    f"{self.origin} has {self.count} listings held here, the most this node "
                    f"holds of one member (max_listings_per_member)",
                )
            )
            return
        if held is None:
            self.count += 1
        self.tombs[lid] = None
        sha = hashlib.sha256(item.canonical).hexdigest()
        self.after[lid] = Held(version, ts, policy, sha)
        self.rows[lid] = {
            "category": listing["category"],
            "version": version,
            "item_ts": ts,
            "key_name": item.key_name,
            "policy_version": policy,
            "received_at": now,
            "feed_seq": self.seq,
            "expires": listing["expires"],
            "visibility": "public" if listing.get("public") else None,
            "signed_bytes": item.canonical.decode("utf-8"),
            "bytes_sha256": sha,
        }
        self.listings[lid] = listing
        result.applied += 1

    def write(self, session: Session, result: ApplyResult) -> None:
        """The page's net changes, one statement per table and kind (per 500 for deletes),
        and ``result``'s lists of what changed, in page order."""
        origin = self.origin
        new, changed, gone = [], [], []
        for lid in self.order:
            was, now = self.before.get(lid), self.after[lid]
            if was is None and now is not None:
                new.append({**self.rows[lid], "origin": origin, "listing_id": lid})
                result.added.append(lid)
            elif was is not None and now is None:
                gone.append(lid)
                result.removed.append(lid)
            elif was is not None and lid in self.rows:
                changed.append({**self.rows[lid], "b_origin": origin, "b_lid": lid})
                result.updated.append(lid)
        _delete(session, REMOTE, origin, gone)
        if changed:
            _executemany(session, _UPDATE_REMOTE_SQL, changed)
        if new:
            _executemany(session, _INSERT_REMOTE, new)
        t_new, t_changed, t_gone = [], [], []
        for lid in self.order:
            was_t, now_t = self.tombs_before.get(lid), self.tombs[lid]
            if was_t == now_t:
                continue
            if now_t is None:
                t_gone.append(lid)
            elif was_t is None:
                t_new.append({"origin": origin, "listing_id": lid, **now_t._asdict()})
            else:
                t_changed.append({"b_origin": origin, "b_lid": lid, **now_t._asdict()})
        _delete(session, TOMBS, origin, t_gone)
        if t_changed:
            session.execute(_UPDATE_TOMBS, t_changed)
        if t_new:
            session.execute(insert(TOMBS), t_new)

    def searched(self, result: ApplyResult) -> dict[str, dict[str, Any] | None]:
        """What public search must change: listing id -> the summary's ``listing`` now
        held, or None when purged."""
        out: dict[str, dict[str, Any] | None] = {lid: self.listings[lid] for lid in result.added}
        out.update((lid, self.listings[lid]) for lid in result.updated)
        out.update((lid, None) for lid in result.removed)
        return out

    def held_now(self) -> dict[str, tuple[int, str] | None]:
        return {lid: None if h is None else (h.version, h.sha256) for lid, h in self.after.items()}


def _keyed_update(table: Any) -> Any:
    """``UPDATE table SET <the other keys of each row> WHERE (origin, listing_id) = the
    row's ``b_origin``, ``b_lid``: run once with a list of rows (executemany)."""
    return update(table).where(
        table.c.origin == bindparam("b_origin"), table.c.listing_id == bindparam("b_lid")
    )


_UPDATE_TOMBS = _keyed_update(TOMBS)


ROW_COLUMNS = [c.name for c in REMOTE.columns if c.name not in ("origin", "listing_id")]
_INSERT_REMOTE = (
    f"INSERT INTO {REMOTE.name} (origin, listing_id, {', '.join(ROW_COLUMNS)}) "
    f"VALUES ({{origin}}, {{listing_id}}, {', '.join('{' + c + '}' for c in ROW_COLUMNS)})"
)
_UPDATE_REMOTE_SQL = (
    f"UPDATE {REMOTE.name} SET {', '.join(c + ' = {' + c + '}' for c in ROW_COLUMNS)} "
    "WHERE origin = {b_origin} AND listing_id = {b_lid}"
)


def _executemany(session: Session, sql: str, rows: list[dict[str, Any]]) -> None:
    """``sql`` (its ``{name}`` marks the parameters) run once per row, handed to the
    database driver as it is: the page's rows are already plain values, and SQLAlchemy's
    processing of each row's parameters cost more than the driver's insert."""
    conn = session.connection()
    style = conn.dialect.paramstyle
    marks = {k: (f"%({k})s" if style == "pyformat" else f":{k}") for k in rows[0]}
    conn.exec_driver_sql(sql.format(**marks), rows)


def _delete(session: Session, table: Any, origin: str, ids: list[str]) -> None:
    for start in range(0, len(ids), CHUNK):
        session.execute(
            delete(table).where(
                table.c.origin == origin, table.c.listing_id.in_(ids[start : start + CHUNK])
            )
        )


class RemoteStore:
    def __init__(
        self,
        engine: Engine,
        page_hooks: Iterable[PageHook] = (),
        *,
        max_per_origin: int | None = None,
        max_quarantined: int = MAX_QUARANTINED,
    ) -> None:
        """``page_hooks``: called with each page as applied, in its transaction.
        ``max_per_origin``: listings held of one origin at most (None: no limit); the
        rest are quarantined as ``over_listing_limit``. ``max_quarantined``: refused
        items kept of one origin, the newest (``PeerStateRow.rejected`` counts all)."""
        self.engine = engine
        self.page_hooks = list(page_hooks)
        self.max_per_origin = max_per_origin
        self.max_quarantined = max_quarantined

    def peer_cursor(self, peer: str) -> PeerCursor:
        with Session(self.engine) as session:
            row = session.get(PeerStateRow, peer)
            if row is None:
                return PeerCursor(None)
            return PeerCursor(row.cursor, row.failures, row.last_attempt)

    def reset_cursor(self, peer: str) -> None:
        with Session(self.engine) as session, session.begin():
            row = session.get(PeerStateRow, peer)
            if row is not None:
                row.cursor = None

    def apply_page(
        self,
        peer: str,
        items: Sequence[VerifiedItem],
        rejected: Sequence[RejectedItem],
        *,
        after: str | None,
        next_cursor: str,
        head: int,
        position: int | None,
        now: int,
    ) -> ApplyResult:
        """One transaction: the page's listings judged against what is held, its rows,
        search rows, inbox and quarantine written in bulk, the cursor moved, and what
        ``page_hooks`` add. The result names the listings added, updated and removed.

        The page began at ``after``: if the cursor is elsewhere, another process pulled
        this peer meanwhile (on PostgreSQL a pull lock dies with its connection), and
        the page is not applied twice (``CursorMoved``). The row lock orders two applies."""
        result = ApplyResult(origin=peer)
        with Session(self.engine) as session, session.begin():
            state = session.get(PeerStateRow, peer, with_for_update=True)
            if state is None:  # the first page: made so that a second pull's waits on it
                insert_ignore(session, PeerStateRow, [{"peer": peer, "failures": 0, "rejected": 0}])
                state = session.get(
                    PeerStateRow, peer, with_for_update=True, populate_existing=True
                )
                assert state is not None
            if state.cursor != after:
                raise CursorMoved(
                    f"{peer}'s cursor moved during this pull: another process pulled it "
                    "(this one's pull lock was lost); nothing of this page was applied"
                )
            page = _Page.read(session, peer, items, self.max_per_origin)
            inbox: list[dict[str, Any]] = []
            for item in items:
                page.seq += 1
                if item.obj["type"] in LISTING_TYPES:
                    page.apply(item, now, result)
                    continue
                inbox.append(
                    {
                        "origin": peer,
                        "type": item.obj["type"],
                        "received_at": now,
                        "obj": item.canonical.decode("utf-8"),
                    }
                )
                result.applied += 1
            page.write(session, result)
            if inbox:
                session.execute(insert(InboxRow), inbox)
            search_store.put_summaries(
                session, peer, page.searched(result), replaced=[*result.updated, *result.removed]
            )
            result.rejected = [*rejected, *result.rejected]
            if result.rejected:
                kept = result.rejected[-self.max_quarantined :]
                session.execute(insert(QuarantineRow), [_quarantined(peer, now, r) for r in kept])
                _trim_quarantine(session, peer, self.max_quarantined)
                state.rejected += len(result.rejected)
            applied = AppliedPage(peer, result, page.held_now(), position, now)
            for hook in self.page_hooks:
                hook(session, applied)
            state.cursor = next_cursor
            state.head = head
            state.position = position
        return result

    def record_run(self, run: RunRecord, *, success: bool) -> None:
        """Record ``run`` and the peer's state after it; once in ``PRUNE_RUNS_EVERY``
        runs, delete the runs that started over ``RUN_RETENTION_MS`` before it ended."""
        with Session(self.engine) as session, session.begin():
            lag = None
            if run.head is not None and run.position is not None:
                lag = max(0, run.head - run.position)
            row = SyncRunRow(
                peer=run.peer,
                started=run.started,
                finished=run.finished,
                applied=run.applied,
                retracted=run.retracted,
                rejected=run.rejected,
                error=run.error,
                head=run.head,
                cursor=run.cursor,
                lag=lag,
            )
            session.add(row)
            session.flush()
            if row.id % PRUNE_RUNS_EVERY == 0:
                cutoff = (run.finished or run.started) - RUN_RETENTION_MS
                session.execute(delete(SyncRunRow).where(SyncRunRow.started < cutoff))
            state = session.get(PeerStateRow, run.peer)
            if state is None:
                state = PeerStateRow(peer=run.peer, failures=0)
                session.add(state)
            state.last_attempt = run.started
            if success:
                state.last_success = run.finished
                state.failures = 0
                state.last_error = None
            else:
                state.failures = (state.failures or 0) + 1
                state.last_error = run.error

    # -- reading ----------------------------------------------------------------------
    def held(self, origin: str | None = None) -> list[RemoteListingRow]:
        with Session(self.engine) as session:
            stmt = select(RemoteListingRow).order_by(
                RemoteListingRow.origin, RemoteListingRow.listing_id
            )
            if origin:
                stmt = stmt.where(RemoteListingRow.origin == origin)
            rows = list(session.scalars(stmt))
            session.expunge_all()
            return rows

    def iter_signed(self, batch: int = 1000) -> Iterator[Row[str, str, int, str]]:
        """Every held copy's origin, listing id, version and signed bytes, a batch of rows
        at a time (in the order of ``held``): memory bounded by a batch, not by what is
        held (copies of up to 1 MiB each, 100,000 of a member)."""
        cols = (
            RemoteListingRow.origin,
            RemoteListingRow.listing_id,
            RemoteListingRow.version,
            RemoteListingRow.signed_bytes,
        )
        after: tuple[str, str] | None = None
        while True:
            stmt = select(*cols).order_by(RemoteListingRow.origin, RemoteListingRow.listing_id)
            if after is not None:
                stmt = stmt.where(
                    tuple_(RemoteListingRow.origin, RemoteListingRow.listing_id) > after
                )
            with Session(self.engine) as session:
                rows = list(session.execute(stmt.limit(batch)))
            yield from rows
            if len(rows) < batch:
                return
            after = (rows[-1].origin, rows[-1].listing_id)

    def counts_by_origin(self) -> dict[str, int]:
        with Session(self.engine) as session:
            stmt = select(RemoteListingRow.origin, func.count()).group_by(RemoteListingRow.origin)
            return {o: int(n) for o, n in session.execute(stmt)}

    def purge_origin(self, origin: str) -> int:
        with Session(self.engine) as session, session.begin():
            search_store.remove_owner(session, origin)
            res = session.execute(delete(RemoteListingRow).where(RemoteListingRow.origin == origin))
            return int(getattr(res, "rowcount", 0) or 0)
