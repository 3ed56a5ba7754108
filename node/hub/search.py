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
is two SQL queries on the engine's full-text index, whatever the number of listings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from node.hub import search_store
from node.hub.search_store import SearchDoc, fts5_query, public_listing, query_terms, tsquery
from node.services.sync_status import peer_statuses
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
]

log = logging.getLogger(__name__)
HELD_KEY = "search.held"  # members' summaries held before the index existed are in it
OWN_KEY = "search.own"  # "<policy version>:<change seq>" the hub's own listings are at
FACET_CACHE = 256
Facets = tuple[int, dict[str, dict[str, int]]]  # total hits, counts per facet


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
        self._lock = threading.Lock()
        # (query) -> (rows' generation, valid until, facets): the LRU of recent facets.
        self._facets: OrderedDict[tuple[Any, ...], tuple[Any, int | None, Facets]] = OrderedDict()
        self._facets_lock = threading.Lock()

    def cached_facets(self, key: tuple[Any, ...], generation: Any, now: int) -> Facets | None:
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
        self, key: tuple[Any, ...], generation: Any, valid_until: int | None, facets: Facets
    ) -> None:
        with self._facets_lock:
            self._facets[key] = (generation, valid_until, facets)
            self._facets.move_to_end(key)
            while len(self._facets) > FACET_CACHE:
                self._facets.popitem(last=False)

    def refresh(self, rt: NodeRuntime) -> None:
        version, compiled = rt.policy.compiled()
        head = rt.listings.head()
        want = f"{version}:{head}"
        with Session(rt.engine) as session:
            if _meta(session, HELD_KEY) == "1" and _meta(session, OWN_KEY) == want:
                return
        with self._lock, Session(rt.engine) as session, session.begin():
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
                        .where(ChangeRow.seq > int(old_head))
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


def _where(q: SearchQuery, dialect: str, now: int) -> tuple[str, str, dict[str, Any]]:
    """(FROM clause, WHERE clause, parameters) of the hits, and the rank to order by."""
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
    if q.ipc:
        params["ipc"] = q.ipc.upper()
        if dialect == "sqlite":  # binary collation: a range on the index
            params["ipc_end"] = q.ipc.upper() + "\U0010ffff"
            codes = "code >= :ipc AND code < :ipc_end"
        else:
            codes = "starts_with(code, :ipc)"
        conds.append(f"{d}.id IN (SELECT doc_id FROM search_codes WHERE {codes})")
    return source, " AND ".join(conds), params


def _order(q: SearchQuery, dialect: str) -> str:
    if not query_terms(q.q):
        return "d.owner, d.listing_id"
    if dialect == "sqlite":  # bm25 is lower for better hits; a title word weighs three
        return "bm25(search_fts, 3.0, 1.0), d.owner, d.listing_id"
    return "ts_rank(f.doc, CAST(:m AS tsquery)) DESC, d.owner, d.listing_id"


def _facets(session: Session, source: str, where: str, params: dict[str, Any]) -> Facets:
    facets: dict[str, dict[str, int]] = {"category": {}, "country": {}, "sector": {}}
    total = 0
    grouped = session.execute(
        text(  # noqa: S608 - fixed fragments, values bound
            f"SELECT d.category, d.country, d.sectors, count(*) FROM {source} "
            f"WHERE {where} GROUP BY d.category, d.country, d.sectors"
        ),
        params,
    )
    for category, country, sectors, n in grouped:
        total += n
        for name, value in (("category", category), ("country", country)):
            facets[name][value] = facets[name].get(value, 0) + n
        for sector in sectors.split("\n") if sectors else []:
            facets["sector"][sector] = facets["sector"].get(sector, 0) + n
    return total, {k: dict(sorted(v.items())) for k, v in facets.items()}


def _run(
    rt: NodeRuntime, index: SearchIndex, q: SearchQuery, now: int
) -> tuple[Facets, list[tuple[str, str]]]:
    dialect = rt.engine.dialect.name
    source, where, params = _where(q, dialect, now)
    key = (q.q, q.category, q.country, q.ipc, q.trl_min, q.sector)
    with Session(rt.engine) as session:
        generation = (
            session.scalar(select(func.max(SearchDocRow.id))),
            session.scalar(select(func.max(SearchRemovalRow.id))),
        )
        facets = index.cached_facets(key, generation, now)
        if facets is None:
            facets = _facets(session, source, where, params)
            valid_until = session.scalar(
                select(func.min(SearchDocRow.expires)).where(SearchDocRow.expires > now)
            )
            index.keep_facets(key, generation, valid_until, facets)
        ids = list(
            session.execute(
                text(  # noqa: S608 - fixed fragments, values bound
                    f"SELECT d.id, d.owner FROM {source} WHERE {where} "
                    f"ORDER BY {_order(q, dialect)} LIMIT :limit OFFSET :offset"
                ),
                {**params, "limit": q.limit, "offset": q.offset},
            )
        )
        shown = dict(
            session.execute(
                select(SearchShownRow.doc_id, SearchShownRow.shown).where(
                    SearchShownRow.doc_id.in_([i for i, _ in ids])
                )
            ).all()
        )
    return facets, [(owner, shown[doc]) for doc, owner in ids if doc in shown]


def search(rt: NodeRuntime, index: SearchIndex, q: SearchQuery) -> dict[str, Any]:
    """One page of public search, with every hit's facets (blocking: run via ``rt.run``)."""
    index.refresh(rt)
    now = rt.clock()
    (total, facets), page = _run(rt, index, q, now)
    stale = {p["peer"]: p for p in peer_statuses(rt) if p["state"] == "stale"} if page else {}
    items = []
    for owner, shown in page:
        item: dict[str, Any] = {"owner": owner, "listing": json.loads(shown)}
        if owner in stale:
            last = stale[owner]["last_success"]
            item["stale"] = True
            item["stale_age_ms"] = None if last is None else now - last
        items.append(item)
    nxt = q.offset + q.limit if q.offset + q.limit < total else None
    return {"total": total, "items": items, "next_offset": nxt, "facets": facets}


def _more_facets(session: Session, source: str, where: str, params: dict[str, Any]) -> Facets:
    trl: dict[str, int] = {}
    for level, n in session.execute(
        text(  # noqa: S608 - fixed fragments, values bound
            f"SELECT d.trl, count(*) FROM {source} WHERE {where} AND d.trl IS NOT NULL "
            "GROUP BY d.trl"
        ),
        params,
    ):
        trl[str(level)] = int(n)
    ipc: dict[str, int] = {}
    for cls, n in session.execute(
        text(  # noqa: S608 - fixed fragments, values bound
            f"SELECT substr(c.code, 1, 4), count(DISTINCT d.id) FROM {source} "
            f"JOIN search_codes c ON c.doc_id = d.id WHERE {where} GROUP BY substr(c.code, 1, 4)"
        ),
        params,
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
    source, where, params = _where(q, rt.engine.dialect.name, rt.clock())
    with Session(rt.engine) as session:
        return _more_facets(session, source, where, params)[1]
