"""Public search at the hub (DESIGN 9): each listing as its owner shows it to the public.

A stranger sees a listing only through its owner's rule for the public audience ``*``,
never through the hub's own view of it (which may name people and organisations the
owner shares with the hub alone). For members' listings that view travels inside the
hub's summary as ``listing.public_view``, built and signed by the owner; for the hub's
own listings it is the hub's policy for ``*``. A listing with no public view is not in
the index. Copies of an unreachable member stay searchable, marked stale with their age,
until they expire.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.services.sync_status import peer_statuses
from node.services.views import envelope, public_view
from node.storage.models import RemoteListingRow

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class SearchQuery:
    q: str = ""
    category: str | None = None
    country: str | None = None
    ipc: str | None = None
    trl_min: int | None = None
    offset: int = 0
    limit: int = 20


def _text(view: dict[str, Any]) -> str:
    f = view.get("fields", {})
    parts = [*(f.get("title") or {}).values(), f.get("summary", ""), f.get("need", "")]
    parts.extend(f.get("keywords") or [])
    return " ".join(str(p) for p in parts).lower()


def public_listing(held: dict[str, Any]) -> dict[str, Any] | None:
    """What public search shows of a member's summary (its ``listing`` member): the
    owner's public view in the summary's envelope, or None when the owner gave none."""
    public = held.get("public_view")
    if not isinstance(public, dict):
        return None
    keep = ("id", "category", "version", "updated", "expires")
    return {
        **{k: held[k] for k in keep},
        "fields": public["fields"],
        "rights": public["rights"],
        "public": True,
    }


Cached = tuple[tuple[int, int], dict[str, Any] | None, str]


class SearchIndex:
    """A small in-memory cache of parsed public views, refreshed from the database."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], Cached] = {}

    def documents(self, rt: NodeRuntime) -> list[tuple[str, dict[str, Any], str]]:
        now = rt.clock()
        with Session(rt.engine) as session:
            rows = session.execute(
                select(
                    RemoteListingRow.origin,
                    RemoteListingRow.listing_id,
                    RemoteListingRow.version,
                    RemoteListingRow.item_ts,
                ).where(RemoteListingRow.visibility == "public", RemoteListingRow.expires > now)
            ).all()
            fresh: dict[tuple[str, str], Cached] = {}
            stale_keys = []
            for origin, lid, version, ts in rows:
                key = (origin, lid)
                cached = self._cache.get(key)
                if cached is not None and cached[0] == (version, ts):
                    fresh[key] = cached
                else:
                    stale_keys.append(key)
            for key in stale_keys:
                row = session.get(RemoteListingRow, key)
                if row is not None:
                    view = public_listing(json.loads(row.signed_bytes)["listing"])
                    text = "" if view is None else _text(view)
                    fresh[key] = ((row.version, row.item_ts), view, text)
        self._cache = fresh
        docs = [
            (origin, view, text)
            for (origin, _), (_, view, text) in fresh.items()
            if view is not None
        ]
        _, compiled = rt.policy.compiled()
        for stored in rt.listings.iter_all(include_withdrawn=False):
            own = public_view(stored.record, compiled, now)
            if own is not None:
                shown = envelope(own, stored.record)
                docs.append((rt.node_id, shown, _text(shown)))
        return docs


def _matches(
    q: SearchQuery, origin: str, view: dict[str, Any], text: str, countries: dict[str, str]
) -> bool:
    f = view.get("fields", {})
    if q.category and view.get("category") != q.category:
        return False
    if q.country:
        country = f.get("country") or countries.get(origin)
        if country != q.country.upper():
            return False
    if q.ipc and not any(str(code).startswith(q.ipc.upper()) for code in f.get("ipc") or []):
        return False
    if q.trl_min is not None and not (isinstance(f.get("trl"), int) and f["trl"] >= q.trl_min):
        return False
    terms = _WORD.findall(q.q.lower())
    return all(t in text for t in terms)


def _score(q: SearchQuery, view: dict[str, Any], text: str) -> float:
    terms = _WORD.findall(q.q.lower())
    title = " ".join((view.get("fields", {}).get("title") or {}).values()).lower()
    return sum(text.count(t) + 3 * title.count(t) for t in terms)


def search(rt: NodeRuntime, index: SearchIndex, q: SearchQuery) -> dict[str, Any]:
    now = rt.clock()
    countries = {m.node_id: m.country for m in rt.directory.members()}
    countries[rt.node_id] = rt.config.country
    stale = {p["peer"]: p for p in peer_statuses(rt) if p["state"] == "stale"}
    hits = [
        (origin, view, text)
        for origin, view, text in index.documents(rt)
        if _matches(q, origin, view, text, countries)
    ]
    hits.sort(key=lambda h: (-_score(q, h[1], h[2]), h[0], h[1]["id"]))
    facets: dict[str, Counter[str]] = {
        "category": Counter(),
        "country": Counter(),
        "sector": Counter(),
    }
    for origin, view, _ in hits:
        f = view.get("fields", {})
        facets["category"][view["category"]] += 1
        facets["country"][f.get("country") or countries.get(origin, "?")] += 1
        for sector in [f.get("sector"), *(f.get("sectors") or [])]:
            if sector:
                facets["sector"][sector] += 1
    page = hits[q.offset : q.offset + q.limit]
    items = []
    for origin, view, _ in page:
        item: dict[str, Any] = {"owner": origin, "listing": view}
        if origin in stale:
            last = stale[origin]["last_success"]
            item["stale"] = True
            item["stale_age_ms"] = None if last is None else now - last
        items.append(item)
    nxt = q.offset + q.limit if q.offset + q.limit < len(hits) else None
    return {
        "total": len(hits),
        "items": items,
        "next_offset": nxt,
        "facets": {k: dict(sorted(v.items())) for k, v in facets.items()},
    }
