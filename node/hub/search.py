"""Public search at the hub (DESIGN 9): each listing as its owner shows it to the public.

A stranger sees a listing only through its owner's rule for the public audience ``*``,
never through the hub's own view of it (which may name people and organisations the
owner shares with the hub alone). For members' listings that view travels inside the
hub's summary as ``listing.public_view``, built and signed by the owner; for the hub's
own listings it is the hub's policy for ``*``. A listing with no public view is not in
the index. Copies of an unreachable member stay searchable, marked stale with their age,
until they expire.

The index is rows in the database (``search_store``): members' summaries are indexed as
they are stored, the hub's own listings once per policy version and change, so a search
is a few SQL queries on the engine's full-text index, whatever the number of listings;
and their cost does not grow with the number of hits: counts without words are sums of
a small table, with words they stop at COUNT_CAP, and hits are ranked in windows of the
RANK_WINDOW newest (see ``_page``).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from node.hub import search_store
from node.hub.search_store import SearchDoc, fts5_query, public_listing, query_terms, tsquery
from node.services.listings import listing_head
from node.services.sync_status import peer_state_name
from node.services.views import envelope, public_view
from node.storage.models import (
    ChangeRow,
    ListingRow,
    MetaRow,
    RemoteListingRow,
    SearchDocRow,
    SearchRemovalRow,
    SearchShownRow,
)

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

__all__ = [
    "SearchIndex",
    "SearchQuery",
    "more_facets",
    "public_listing",
    "rows_generation",
    "search",
    "search_body",
]

log = logging.getLogger(__name__)
HELD_KEY = "search.held"  # members' summaries held before the index existed are in it
OWN_KEY = "search.own"  # "<policy version>:<change seq>" the hub's own listings are at
FACET_CACHE = 256
# Pages of results kept, at most ANSWER_CACHE and ANSWER_CACHE_BYTES of listing JSON and
# encoded answers: a page is kept as its listings' JSON text (a hit parsed took ~4.5 times
# its JSON, and up to 100 hits of up to a feed item's size each made a page of megabytes:
# a stranger asking 256 such pages could grow the hub by gigabytes). About 60 KB a page
# of 20 typical hits with its encoded answer, so the count binds first in normal use.
ANSWER_CACHE = 256
ANSWER_CACHE_BYTES = 16 * 1024 * 1024
# While the rows change under searches that run at the same time, a page computed less
# than STALE_S ago is answered while it is computed anew in the background, once a
# REFRESH_S (Elasticsearch's refresh interval): the searches never wait for it. A search
# alone computes the current page, so a search after a write sees the write.
REFRESH_S = 1.0
STALE_S = 2.0
COMPUTING = 2  # searches computed at once (the others answer what is cached, or wait)
POOL_THREADS = 6  # answering searches (a computing one holds one; the others answer from cache)
Facets = tuple[int, dict[str, dict[str, int]]]  # total hits, counts per facet
Counted = tuple[Facets, bool]  # and whether the total is exact
Window = Sequence[int]  # document ids of hits, ranked
WINDOW_CACHE = 256  # ranked windows kept (16 KB each: the pages of a query rank once)
# A search's cost does not grow with its hits: with words or an IPC filter, hits are
# counted (total and facets) up to COUNT_CAP, and ranked by relevance in windows of the
# RANK_WINDOW newest; without either, counts are sums of search_counts.
COUNT_CAP = 2_000
# IPC classes counted for the marketplace's facet, those with most hits (it shows 30). A
# class is any letter A-H, two digits and a letter: 2,000 hits could name 20,800 of them,
# and a count of each, kept for each of the 256 queries cached, was ~500 MB.
IPC_FACETS = 100
RANK_WINDOW = 1_000
RARE_CODES = 5_000  # an IPC prefix with fewer codes drives a search (SQLite; see _rare_ipc)
Page = list[tuple[str, str]]  # (owner, the listing shown, as JSON) of each hit
T = TypeVar("T")
# Whether the rows are current, in one statement: the rows' generation (a new largest
# id or a new removal marks every write), and where the hub's own listings should be:
# the last entry of their change log (``reader`` NULL: the outbox's entries for members,
# written as notices go out, are not the hub's listings).
_STATE = text(
    "SELECT (SELECT max(id) FROM search_docs), (SELECT max(id) FROM search_removals), "
    "(SELECT max(seq) FROM changes WHERE reader IS NULL), "
    "(SELECT max(version) FROM policy_versions WHERE active = :yes), "
    "(SELECT value FROM meta WHERE key = :own), (SELECT value FROM meta WHERE key = :held)"
)
_PEERS = text(
    "SELECT peer, head, position, last_attempt, last_success, last_error, failures FROM peer_state"
)


@dataclass(frozen=True)
class _Answer:
    generation: Any
    valid_until: int | None  # the first expiry among the rows when it was computed
    made: float  # monotonic seconds
    facets: Facets
    page: Page
    exact: bool = True  # whether facets' total is exact (else: at least that many)
    more: bool | None = None  # whether a page follows (None: as the total tells)
    # The API's JSON of this page when no hit is stale, made by the first search that
    # sends it (``search_body``): the searches answered from the cache encode nothing.
    encoded: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    @functools.cached_property
    def nbytes(self) -> int:
        """What the answer holds beyond its fixed parts: its hits' JSON, twice (the
        encoded answer, made later, holds them once more)."""
        return 2 * sum(len(shown) for _, shown in self.page)


@dataclass(frozen=True)
class SearchQuery:
    q: str = ""
    category: str | None = None
    country: str | None = None
    ipc: str | None = None
    trl_min: int | None = None
    offset: int = 0
    limit: int = 20
    sector: str | None = None  # the marketplace's filter (one of a listing's sectors)


def _refresh_lock(node_id: str) -> int:
    """The PostgreSQL advisory lock of this node's refresh (other nodes may keep their
    schemas in the same database: the node id is part of it)."""
    digest = hashlib.sha256(f"cattc-search:{node_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _meta(session: Session, key: str) -> str | None:
    row = session.get(MetaRow, key)
    return None if row is None else row.value


def _set_meta(session: Session, key: str, value: str) -> None:
    row = session.get(MetaRow, key)
    if row is None:
        session.add(MetaRow(key=key, value=value))
    else:
        row.value = value


class SearchIndex:
    """Keeps the search rows current where they are not written with their source: the
    summaries held before the index existed (once), and the hub's own listings (when the
    policy's version or the change log moved, never per request)."""

    def __init__(self) -> None:
        # Held while the hub's own listings are indexed (database work: never taken on
        # the event loop); the executors have their own, taken for a moment on the loop.
        self._lock = threading.Lock()
        self._executors_lock = threading.Lock()
        # (query) -> (rows' generation, valid until, facets): the LRU of recent facets.
        self._facets: OrderedDict[tuple[Any, ...], tuple[Any, int | None, Counted]] = OrderedDict()
        self._facets_lock = threading.Lock()
        self._windows: OrderedDict[tuple[Any, ...], tuple[Any, int | None, Window]] = OrderedDict()
        # (query, offset, limit) -> its last answer: the LRU of recent pages, and the
        # pages being computed (each by one search; the others wait for it or answer
        # the previous page, see REFRESH_S).
        self._answers: OrderedDict[tuple[Any, ...], _Answer] = OrderedDict()
        self._answer_bytes = 0  # their nbytes, summed
        self._computing: dict[tuple[Any, ...], threading.Event] = {}
        self._answers_lock = threading.Lock()
        self._searching = 0  # searches in ``answer`` now
        self._gate = threading.BoundedSemaphore(COMPUTING)
        self._executor: ThreadPoolExecutor | None = None
        self._background_executor: ThreadPoolExecutor | None = None

    def _pool(self) -> ThreadPoolExecutor:
        with self._executors_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="search")
            return self._executor

    def _refresher(self) -> ThreadPoolExecutor:
        """Threads of their own for pages computed in the background: they never hold
        the threads that answer searches."""
        with self._executors_lock:
            if self._background_executor is None:
                self._background_executor = ThreadPoolExecutor(
                    COMPUTING, thread_name_prefix="search-refresh"
                )
            return self._background_executor

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a search (blocking) on the search's own threads, so that searches never
        wait behind sync's database work on the runtime's threads, nor it behind them."""
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, **kwargs)
        return await loop.run_in_executor(self._pool(), call)

    def close(self) -> None:
        with self._executors_lock:
            executors = (self._executor, self._background_executor)
            self._executor = self._background_executor = None
        for executor in executors:
            if executor is not None:
                executor.shutdown(wait=False)

    def generation(self, rt: NodeRuntime) -> tuple[Any, Any]:
        """The rows' generation, once they are current: the hub's own listings are
        indexed again first when its policy or its listings changed (one statement
        when nothing did; blocking)."""
        return self.state(rt, peers=False)[0]

    def state(self, rt: NodeRuntime, *, peers: bool = True) -> tuple[tuple[Any, Any], list[Any]]:
        """The rows' generation (as ``generation``) and the members' sync states (the
        peer_state rows: one per member), read together (blocking)."""
        params = {"yes": True, "own": OWN_KEY, "held": HELD_KEY}
        states: list[Any] = []
        for _ in range(2):
            with rt.engine.connect() as conn:
                docs, removals, head, version, own, held = conn.execute(_STATE, params).one()
                if peers:
                    states = list(conn.execute(_PEERS))
            if held == "1" and own == f"{version or 0}:{head or 0}":
                break
            self.refresh(rt)
        return (docs, removals), states

    def answer(
        self, q: SearchQuery, generation: Any, now: int, compute: Callable[[], _Answer]
    ) -> _Answer:
        """``q``'s page and facets: the cached answer while the rows are those it was
        computed from (``generation``), else computed once for all the searches asking
        it meanwhile (``compute``). While other searches run, a page computed less than
        STALE_S ago is answered as it is and computed anew in the background (once a
        REFRESH_S); a search alone always computes the current page."""
        key = (q.q, q.category, q.country, q.ipc, q.trl_min, q.sector, q.offset, q.limit)
        with self._answers_lock:
            self._searching += 1
        try:
            while True:
                with self._answers_lock:
                    entry = self._answers.get(key)
                    busy = self._computing.get(key)
                    if entry is not None and (entry.valid_until is None or now < entry.valid_until):
                        if entry.generation == generation:
                            self._answers.move_to_end(key)
                            return entry
                        age = time.monotonic() - entry.made
                        if age < STALE_S and (busy is not None or self._searching > 1):
                            if busy is None and age >= REFRESH_S:
                                self._computing[key] = threading.Event()
                                self._background(key, compute)
                            return entry
                    if busy is None:
                        mine = self._computing[key] = threading.Event()
                        break
                busy.wait(timeout=60)  # the same page is being computed: take it
            return self._compute(key, compute, mine)
        finally:
            with self._answers_lock:
                self._searching -= 1

    def _compute(
        self, key: tuple[Any, ...], compute: Callable[[], _Answer], done: threading.Event
    ) -> _Answer:
        try:
            with self._gate:
                made = compute()
            with self._answers_lock:
                old = self._answers.pop(key, None)
                self._answer_bytes += made.nbytes - (0 if old is None else old.nbytes)
                self._answers[key] = made
                while len(self._answers) > ANSWER_CACHE or self._answer_bytes > ANSWER_CACHE_BYTES:
                    self._answer_bytes -= self._answers.popitem(last=False)[1].nbytes
            return made
        finally:
            with self._answers_lock:
                del self._computing[key]
            done.set()

    def _background(self, key: tuple[Any, ...], compute: Callable[[], _Answer]) -> None:
        """Compute ``key``'s page anew on the search's threads (its Event is set)."""
        done = self._computing[key]

        def run() -> None:
            try:
                self._compute(key, compute, done)
            except Exception:  # the next search computes it (and raises) itself
                log.exception("search: computing a page in the background")

        try:
            self._refresher().submit(run)
        except RuntimeError:  # shut down: nothing more is computed
            del self._computing[key]
            done.set()

    def window(
        self,
        key: tuple[Any, ...],
        generation: Any,
        valid_until: int | None,
        now: int,
        make: Callable[[], Window],
    ) -> Window:
        """A ranked window of hits (``key``: the query and the window's start), kept while
        no row changed or expired, so that the pages of a query rank their hits once."""
        with self._facets_lock:
            entry = self._windows.get(key)
            if (
                entry is not None
                and entry[0] == generation
                and (entry[1] is None or now < entry[1])
            ):
                self._windows.move_to_end(key)
                return entry[2]
        made = make()
        with self._facets_lock:
            self._windows[key] = (generation, valid_until, made)
            self._windows.move_to_end(key)
            while len(self._windows) > WINDOW_CACHE:
                self._windows.popitem(last=False)
        return made

    def cached_facets(self, key: tuple[Any, ...], generation: Any, now: int) -> Counted | None:
        """Total and facets of a query while no row changed and none expired since."""
        with self._facets_lock:
            entry = self._facets.get(key)
            if entry is None or entry[0] != generation:
                return None
            if entry[1] is not None and now >= entry[1]:
                return None
            self._facets.move_to_end(key)
            return entry[2]

    def keep_facets(
        self, key: tuple[Any, ...], generation: Any, valid_until: int | None, facets: Counted
    ) -> None:
        with self._facets_lock:
            self._facets[key] = (generation, valid_until, facets)
            self._facets.move_to_end(key)
            while len(self._facets) > FACET_CACHE:
                self._facets.popitem(last=False)

    def refresh(self, rt: NodeRuntime) -> None:
        version, compiled = rt.policy.compiled()

        def behind() -> int | None:
            """The listings' head when the rows are behind it (or the policy), else None."""
            with Session(rt.engine) as session:
                head = listing_head(session)
                current = _meta(session, HELD_KEY) == "1" and _meta(session, OWN_KEY) == (
                    f"{version}:{head}"
                )
                return None if current else head

        if behind() is None:
            return
        with self._lock:  # the searches that found the rows behind wait for the first
            head = behind()
            if head is not None:
                self._refresh(rt, version, compiled, head)

    def _refresh(self, rt: NodeRuntime, version: int, compiled: Any, head: int) -> None:
        want = f"{version}:{head}"
        with Session(rt.engine) as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":  # one hub worker at a time
                key = _refresh_lock(rt.node_id)
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            if _meta(session, HELD_KEY) != "1":
                self._index_held(session)
                _set_meta(session, HELD_KEY, "1")
            was = _meta(session, OWN_KEY)
            if was == want:
                return
            old_version, _, old_head = (was or "").partition(":")
            if old_version == str(version) and old_head.isdigit():
                ids: list[str] = list(
                    session.scalars(
                        select(ChangeRow.listing_id)
                        .where(ChangeRow.reader.is_(None), ChangeRow.seq > int(old_head))
                        .group_by(ChangeRow.listing_id)
                    )
                )
            else:
                search_store.remove_owner(session, rt.node_id)
                ids = list(session.scalars(select(ListingRow.id)))
                old_head = ""
            self._index_own(session, rt, compiled, ids, replace=bool(old_head))
            _set_meta(session, OWN_KEY, want)
            log.info("search: own listings indexed at policy v%s, change %s", version, head)

    @staticmethod
    def _index_held(session: Session) -> None:
        stmt = (
            select(RemoteListingRow.origin, RemoteListingRow.listing_id)
            .where(RemoteListingRow.visibility == "public")
            .order_by(RemoteListingRow.origin, RemoteListingRow.listing_id)
        )
        keys = [(str(o), str(i)) for o, i in session.execute(stmt)]
        for start in range(0, len(keys), 500):
            by_origin: dict[str, dict[str, dict[str, Any] | None]] = {}
            for origin, lid in keys[start : start + 500]:
                row = session.get(RemoteListingRow, (origin, lid))
                if row is not None:
                    listing = json.loads(row.signed_bytes)["listing"]
                    by_origin.setdefault(origin, {})[lid] = listing
            for origin, changed in by_origin.items():
                search_store.put_summaries(session, origin, changed)
            session.expunge_all()

    @staticmethod
    def _index_own(
        session: Session, rt: NodeRuntime, compiled: Any, ids: list[str], *, replace: bool
    ) -> None:
        now = rt.clock()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            if replace:
                search_store.remove(session, rt.node_id, chunk)
            rows = session.execute(
                select(ListingRow.record).where(
                    ListingRow.id.in_(chunk), ListingRow.withdrawn.is_(False)
                )
            )
            docs = []
            for (raw,) in rows:
                record = json.loads(raw)
                own = public_view(record, compiled, now)
                if own is not None:
                    shown = envelope(own, record)
                    docs.append(SearchDoc(rt.node_id, shown, rt.config.country))
            search_store.put_many(session, docs)


def _filters(q: SearchQuery, dialect: str, d: str) -> tuple[list[str], dict[str, Any]]:
    """The conditions of ``q``'s filters but IPC on the rows named ``d`` (search_docs or
    search_counts: the columns they share), with their parameters."""
    conds: list[str] = []
    params: dict[str, Any] = {}
    if q.category:
        conds.append(f"{d}.category = :category")
        params["category"] = q.category
    if q.country:
        conds.append(f"{d}.country = :country")
        params["country"] = q.country.upper()
    if q.trl_min is not None:
        conds.append(f"{d}.trl >= :trl")
        params["trl"] = q.trl_min
    if q.sector:
        conds.append(f"(:nl || {d}.sectors || :nl) LIKE :sector ESCAPE '!'")
        params["nl"] = "\n"
        escaped = q.sector.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        params["sector"] = f"%\n{escaped}\n%"
    return conds, params


def _where(
    q: SearchQuery, dialect: str, now: int, *, rare_ipc: bool = False
) -> tuple[str, str, dict[str, Any]]:
    """(FROM clause, WHERE clause, parameters) of the hits. ``rare_ipc``: the IPC prefix
    has fewer than RARE_CODES codes (``_rare_ipc``), which then drive on SQLite."""
    params: dict[str, Any] = {"now": now}
    terms = query_terms(q.q)
    # Without words, SQLite walks ix_search_docs_order in the page's order, testing the
    # filters on the index ("+" keeps it from sorting what a filter's index finds).
    d = "+d" if dialect == "sqlite" and not terms else "d"
    conds = [f"{d}.expires > :now"]
    if not terms:
        source = "search_docs d"
    elif dialect == "sqlite":
        # CROSS JOIN: SQLite keeps this order, the full-text index driving (never a
        # MATCH run for each row a filter's index finds).
        source = "search_fts f CROSS JOIN search_docs d ON d.id = f.rowid"
        conds.append("search_fts MATCH :m")
        params["m"] = fts5_query(terms)
    else:
        source = "search_fts f JOIN search_docs d ON d.id = f.doc_id"
        conds.append("f.doc @@ CAST(:m AS tsquery)")
        params["m"] = tsquery(terms)
    more, values = _filters(q, dialect, d)
    if q.country and d == "+d":  # ix_search_docs_country_order: that country's rows, in order
        more = [c.replace("+d.country", "d.country") for c in more]
    conds.extend(more)
    params.update(values)
    if q.ipc:
        params["ipc"] = q.ipc.upper()
        if dialect == "sqlite":  # binary collation: a range on the index
            params["ipc_end"] = q.ipc.upper() + "\U0010ffff"
            codes = "code >= :ipc AND code < :ipc_end"
        else:
            codes = "starts_with(code, :ipc)"
        if dialect == "sqlite" and not rare_ipc:  # a probe of the codes' key per row
            conds.append(
                f"EXISTS (SELECT 1 FROM search_codes c WHERE c.doc_id = d.id AND c.{codes})"
            )
        elif dialect == "sqlite" and not terms:  # the few documents with such codes drive
            conds.append(f"d.id IN (SELECT doc_id FROM search_codes WHERE {codes})")
        else:
            conds.append(f"{d}.id IN (SELECT doc_id FROM search_codes WHERE {codes})")
    return source, " AND ".join(conds), params


def _rare_ipc(session: Session, q: SearchQuery, dialect: str) -> bool:
    """Whether ``q``'s IPC prefix has fewer than RARE_CODES codes (one index range, cut
    there): then its documents drive a search, else documents are walked and their codes
    probed (a rare prefix walked so would visit every document, a common one driven so
    would collect all of its documents)."""
    if not q.ipc or dialect != "sqlite":
        return False
    ipc = q.ipc.upper()
    n = session.scalar(
        text(
            "SELECT count(*) FROM (SELECT 1 FROM search_codes "
            "WHERE code >= :ipc AND code < :ipc_end LIMIT :n) codes"
        ),
        {"ipc": ipc, "ipc_end": ipc + "\U0010ffff", "n": RARE_CODES},
    )
    return int(n or 0) < RARE_CODES


def _tally(rows: Any) -> tuple[int, dict[str, dict[str, int]]]:
    """Total and facets from (category, country, sectors, count) rows."""
    facets: dict[str, dict[str, int]] = {"category": {}, "country": {}, "sector": {}}
    total = 0
    for category, country, sectors, count in rows:
        n = int(count)
        if not n:
            continue
        total += n
        for name, value in (("category", category), ("country", country)):
            facets[name][value] = facets[name].get(value, 0) + n
        for sector in sectors.split("\n") if sectors else []:
            facets["sector"][sector] = facets["sector"].get(sector, 0) + n
    return total, {k: dict(sorted((v, n) for v, n in f.items() if n)) for k, f in facets.items()}


def _summed(q: SearchQuery) -> bool:
    """Whether ``q``'s counts come from search_counts (no words, no IPC filter)."""
    return not query_terms(q.q) and not q.ipc


def _by_value(
    session: Session, q: SearchQuery, dialect: str, now: int, columns: str
) -> list[tuple[Any, ...]]:
    """Documents by ``columns`` (of search_counts and search_docs) for a query without
    words or IPC: the sums of search_counts, less the documents that expired (which
    are in it until their summaries go: a range of ix_search_docs_expires)."""
    conds, params = _filters(q, dialect, "c")
    where = " AND ".join(conds) or "1 = 1"
    counted: dict[tuple[Any, ...], int] = {}
    for *key, n in session.execute(
        text(  # noqa: S608 - fixed fragments, values bound
            f"SELECT {columns}, sum(c.n) FROM search_counts c WHERE {where} GROUP BY {columns}"
        ),
        params,
    ):
        counted[tuple(key)] = counted.get(tuple(key), 0) + int(n)
    conds, params = _filters(q, dialect, "d")
    expired = " AND ".join(["d.expires <= :now", *conds])
    cols = columns.replace("c.", "d.")
    # The expiry's index drives (not a covering index in the GROUP BY's order).
    docs = (
        "search_docs d INDEXED BY ix_search_docs_expires"
        if dialect == "sqlite"
        else "search_docs d"
    )
    for *key, n in session.execute(
        text(  # noqa: S608 - fixed fragments, values bound
            f"SELECT {cols}, count(*) FROM {docs} WHERE {expired} GROUP BY {cols}"
        ),
        {**params, "now": now},
    ):
        counted[tuple(key)] = counted.get(tuple(key), 0) - int(n)
    return [(*key, n) for key, n in counted.items() if n > 0]


def _facets(session: Session, q: SearchQuery, dialect: str, now: int) -> tuple[Facets, bool]:
    """Total and facets of ``q``'s hits, and whether the total is exact: summed from
    search_counts without words or IPC filter, else counted over COUNT_CAP hits at most
    (a total of COUNT_CAP: at least that many)."""
    if _summed(q):
        rows = _by_value(session, q, dialect, now, "c.category, c.country, c.sectors")
        return _tally(rows), True
    source, where, params = _where(q, dialect, now, rare_ipc=_rare_ipc(session, q, dialect))
    grouped = session.execute(
        text(  # noqa: S608 - fixed fragments, values bound
            "SELECT category, country, sectors, count(*) FROM ("
            f"SELECT d.category AS category, d.country AS country, d.sectors AS sectors "
            f"FROM {source} WHERE {where} LIMIT :cap) hits GROUP BY category, country, sectors"
        ),
        {**params, "cap": COUNT_CAP},
    )
    total, facets = _tally(grouped)
    return (total, facets), total < COUNT_CAP


def _page(
    session: Session,
    q: SearchQuery,
    dialect: str,
    now: int,
    windows: Callable[[tuple[Any, ...], Callable[[], Window]], Window] = lambda _k, make: make(),
) -> list[int]:
    """Document ids of ``q``'s hits from its offset, one more than its limit (to
    tell whether a page follows). Without words, in owner and id order (a walk of
    ix_search_docs_order); with words, the hits taken newest first in windows of
    RANK_WINDOW, each ranked by relevance (bm25 / ts_rank over that window only, so a
    page costs the same whether a word is in 100 or 100,000 listings). ``windows``
    gives a ranked window (by its key) as kept, or as made by the function it is given."""
    source, where, params = _where(q, dialect, now, rare_ipc=_rare_ipc(session, q, dialect))
    end = q.offset + q.limit + 1
    if not query_terms(q.q):
        return [
            int(i)
            for (i,) in session.execute(
                text(  # noqa: S608 - fixed fragments, values bound
                    f"SELECT d.id FROM {source} WHERE {where} "
                    "ORDER BY d.owner, d.listing_id LIMIT :limit OFFSET :offset"
                ),
                {**params, "limit": end - q.offset, "offset": q.offset},
            )
        ]
    if dialect == "sqlite":  # bm25 is lower for better hits; a title word weighs three
        ranked = (
            "SELECT id FROM ("
            "SELECT d.id AS id, d.owner AS owner, d.listing_id AS lid, "
            f"bm25(search_fts, 3.0, 1.0) AS r FROM {source} WHERE {where} "
            "ORDER BY f.rowid DESC LIMIT :window OFFSET :start"
            ") hits ORDER BY r, owner, lid"
        )
    else:
        ranked = (
            "SELECT hits.id FROM ("
            f"SELECT d.id, d.owner, d.listing_id FROM {source} WHERE {where} "
            "ORDER BY d.id DESC LIMIT :window OFFSET :start"
            ") hits JOIN search_fts r ON r.doc_id = hits.id "
            "ORDER BY ts_rank(r.doc, CAST(:m AS tsquery)) DESC, hits.owner, hits.listing_id"
        )

    def window(start: int) -> Callable[[], Window]:
        def make() -> Window:
            got = session.execute(text(ranked), {**params, "window": RANK_WINDOW, "start": start})
            return array("q", (int(i) for (i,) in got))

        return make

    out: list[int] = []
    pos = q.offset
    while pos < end:
        start = pos - pos % RANK_WINDOW
        key = (q.q, q.category, q.country, q.ipc, q.trl_min, q.sector, start)
        ranked_hits = windows(key, window(start))
        out.extend(ranked_hits[pos - start : end - start])
        if len(ranked_hits) < RANK_WINDOW:
            break
        pos = start + RANK_WINDOW
    return out


def _reading(session: Session) -> None:
    """``session`` set for a search. On PostgreSQL: the hits' rows are reached by their
    ids (nested loops: a hash or merge join reads every document, as the planner takes
    a word's hits for more than the window they are cut to), and in the process that
    asks (parallel workers only add to the load of many searches at once)."""
    if session.get_bind().dialect.name == "postgresql":
        for setting in ("enable_hashjoin", "enable_mergejoin"):
            session.execute(text(f"SET LOCAL {setting} = off"))
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


def _compute(
    rt: NodeRuntime, index: SearchIndex, q: SearchQuery, now: int, generation: Any
) -> _Answer:
    dialect = rt.engine.dialect.name
    key = (q.q, q.category, q.country, q.ipc, q.trl_min, q.sector)
    with Session(rt.engine) as session:
        _reading(session)
        valid_until = session.scalar(
            select(func.min(SearchDocRow.expires)).where(SearchDocRow.expires > now)
        )
        cached = index.cached_facets(key, generation, now)
        if cached is None:
            cached = _facets(session, q, dialect, now)
            index.keep_facets(key, generation, valid_until, cached)
        facets, exact = cached
        ids = _page(
            session,
            q,
            dialect,
            now,
            lambda k, make: index.window(k, generation, valid_until, now, make),
        )
        more = len(ids) > q.limit
        ids = ids[: q.limit]
        shown = {
            doc: (owner, view)
            for doc, owner, view in session.execute(
                select(SearchShownRow.doc_id, SearchDocRow.owner, SearchShownRow.shown)
                .join(SearchDocRow, SearchDocRow.id == SearchShownRow.doc_id)
                .where(SearchShownRow.doc_id.in_(ids))
            )
        }
    page = [shown[doc] for doc in ids if doc in shown]
    return _Answer(generation, valid_until, time.monotonic(), facets, page, exact, more)


def _stale(rt: NodeRuntime, states: list[Any], page: Page, now: int) -> dict[str, int | None]:
    """The owners on ``page`` whose copies are stale, with their last success (the
    sync status page's rule: a member that failed for three intervals)."""
    owners = {owner for owner, _ in page} - {rt.node_id}
    interval = int(rt.config.sync_interval_seconds * 1000)
    # held=1: a member with rows in search holds summaries.
    return {
        row.peer: row.last_success
        for row in states
        if row.peer in owners and peer_state_name(row, 1, now, interval) == "stale"
    }


def search(rt: NodeRuntime, index: SearchIndex, q: SearchQuery) -> dict[str, Any]:
    """One page of public search, with every hit's facets (blocking: run via
    ``index.run``). Answers are cached per query while no search row changed."""
    now = rt.clock()
    found, stale = _found(rt, index, q, now)
    return _result(q, found, stale, now)


def search_body(rt: NodeRuntime, index: SearchIndex, q: SearchQuery) -> bytes:
    """``search``'s answer as the API sends it, JSON (blocking: run via ``index.run``).
    While no hit is stale, a cached page is encoded once, by the first search sending it:
    at a hub searched many times a second, encoding the same answer again and again took
    more of its CPU than finding it."""
    now = rt.clock()
    found, stale = _found(rt, index, q, now)
    if stale:  # each answer says how old the stale hits are: made anew
        return json.dumps(_result(q, found, stale, now)).encode()
    body = found.encoded.get("")
    if body is None:
        body = found.encoded[""] = json.dumps(_result(q, found, stale, now)).encode()
    return body


def _found(
    rt: NodeRuntime, index: SearchIndex, q: SearchQuery, now: int
) -> tuple[_Answer, dict[str, int | None]]:
    """``q``'s cached (or computed) page and the owners of its hits whose copies are
    stale, with when they were last synced."""
    generation, states = index.state(rt)
    found = index.answer(q, generation, now, lambda: _compute(rt, index, q, now, generation))
    stale = _stale(rt, states, found.page, now) if states else {}
    return found, stale


def _result(
    q: SearchQuery, found: _Answer, stale: dict[str, int | None], now: int
) -> dict[str, Any]:
    total, facets = found.facets
    items = []
    for owner, listing in found.page:
        item: dict[str, Any] = {"owner": owner, "listing": json.loads(listing)}
        if owner in stale:
            last = stale[owner]
            item["stale"] = True
            item["stale_age_ms"] = None if last is None else now - last
        items.append(item)
    more = found.more if found.more is not None else q.offset + q.limit < total
    nxt = q.offset + q.limit if more else None
    return {
        "total": total,
        "total_exact": found.exact,
        "items": items,
        "next_offset": nxt,
        "facets": facets,
    }


def _more_facets(session: Session, q: SearchQuery, dialect: str, now: int) -> Facets:
    """Counts by TRL (summed from search_counts without words or IPC filter, else over
    COUNT_CAP hits at most) and by IPC class (over COUNT_CAP hits at most; the
    IPC_FACETS classes with most hits)."""
    trl: dict[str, int] = {}
    source, where, params = _where(q, dialect, now, rare_ipc=_rare_ipc(session, q, dialect))
    capped = f"SELECT d.id AS id, d.trl AS trl FROM {source} WHERE {where} LIMIT :cap"
    params = {**params, "cap": COUNT_CAP}
    if _summed(q):
        levels: Any = _by_value(session, q, dialect, now, "c.trl")
    else:
        levels = session.execute(
            text(f"SELECT trl, count(*) FROM ({capped}) hits GROUP BY trl"),  # noqa: S608
            params,
        )
    for level, n in levels:
        if level is not None:
            trl[str(level)] = int(n)
    ipc: dict[str, int] = {}
    for cls, n in session.execute(
        text(  # noqa: S608 - fixed fragments, values bound
            f"SELECT substr(c.code, 1, 4), count(DISTINCT hits.id) FROM ({capped}) hits "
            "JOIN search_codes c ON c.doc_id = hits.id GROUP BY substr(c.code, 1, 4) "
            "ORDER BY count(DISTINCT hits.id) DESC, substr(c.code, 1, 4) LIMIT :classes"
        ),
        {**params, "classes": IPC_FACETS},
    ):
        ipc[str(cls)] = int(n)
    return 0, {"trl": dict(sorted(trl.items())), "ipc": dict(sorted(ipc.items()))}


def rows_generation(rt: NodeRuntime) -> tuple[Any, Any]:
    """What changes whenever a search row is added or removed (blocking)."""
    with Session(rt.engine) as session:
        return (
            session.scalar(select(func.max(SearchDocRow.id))),
            session.scalar(select(func.max(SearchRemovalRow.id))),
        )


def more_facets(rt: NodeRuntime, q: SearchQuery) -> dict[str, dict[str, int]]:
    """Counts of ``q``'s hits by TRL and by IPC class (four characters), for the public
    marketplace, which caches them (blocking: run via ``rt.run``)."""
    with Session(rt.engine) as session:
        _reading(session)
        return _more_facets(session, q, rt.engine.dialect.name, rt.clock())[1]
