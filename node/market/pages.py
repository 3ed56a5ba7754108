"""What the marketplace's pages show, read from public search (``node.hub.search``): a
page of results with its facets as links (every state of the page is a plain GET URL,
so it can be shared), and one listing as its owner shows it to anyone.

A visitor's query string is read leniently: a value that does not fit is ignored (and
said so on the page), never an error page.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from multidict import MultiMapping
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.hub.search import SearchIndex, SearchQuery, search
from node.market.facets import FacetCache
from node.storage.models import MemberRow, SearchDocRow, SearchShownRow
from node.ui.i18n import N_
from node.ui.labels import ALL, CATEGORIES, SECTORS, label
from node.web.numbers import count
from protocol.timeutil import ms_to_iso

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

PAGE_SIZE = 20
MAX_PAGE = 5000  # public search pages at most 100,000 hits deep
FACET_SHOWN = 30
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_IPC = re.compile(r"^[A-Ha-h][0-9A-Za-z /]{0,15}$")
PARAMS = ("q", "category", "country", "sector", "ipc", "trl", "page")


@dataclass(frozen=True)
class Filters:
    """A search as the page's URL states it."""

    q: str = ""
    category: str = ""
    country: str = ""
    sector: str = ""
    ipc: str = ""
    trl: int | None = None
    page: int = 1
    ignored: tuple[str, ...] = field(default=())

    def params(self, **change: Any) -> dict[str, str]:
        values = {k: getattr(self, k) for k in PARAMS}
        values.update(change)
        return {
            k: str(v)
            for k, v in values.items()
            if v not in ("", None) and not (k == "page" and int(v) <= 1)
        }

    def url(self, **change: Any) -> str:
        """This search's URL with ``change``d values (a filter's change goes to page 1)."""
        if any(k != "page" for k in change):
            change.setdefault("page", 1)
        query = urlencode(self.params(**change))
        return "/?" + query if query else "/"

    def query(self) -> SearchQuery:
        return SearchQuery(
            q=self.q,
            category=self.category or None,
            country=self.country or None,
            ipc=self.ipc or None,
            trl_min=self.trl,
            sector=self.sector or None,
            offset=(self.page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
        )

    @property
    def active(self) -> bool:
        return bool(self.category or self.country or self.sector or self.ipc or self.trl)


def parse_filters(query: MultiMapping[str]) -> Filters:
    """The filters of a page's query string; what does not fit is left out and named."""
    ignored: list[str] = []

    def pick(name: str, ok: bool) -> bool:
        if not ok and query.get(name):
            ignored.append(name)
        return ok

    q = " ".join(str(query.get("q", ""))[:200].split())
    category = str(query.get("category", ""))
    country = str(query.get("country", "")).upper()
    sector = str(query.get("sector", ""))
    ipc = str(query.get("ipc", "")).upper().strip()
    trl_raw = str(query.get("trl", ""))
    page_raw = str(query.get("page", "1"))
    trl_n, page_n = count(trl_raw, 1), count(page_raw, 5)
    trl = trl_n if pick("trl", trl_n is not None and 1 <= trl_n <= 9) else None
    page = page_n if pick("page", page_n is not None) and page_n is not None else 1
    return Filters(
        q=q,
        category=category if pick("category", category in CATEGORIES) else "",
        country=country if pick("country", bool(_COUNTRY.match(country))) else "",
        sector=sector if pick("sector", sector in SECTORS) else "",
        ipc=ipc if pick("ipc", bool(_IPC.match(ipc))) else "",
        trl=trl,
        page=min(max(page, 1), MAX_PAGE),
        ignored=tuple(ignored),
    )


def listing_url(owner: str, listing_id: str) -> str:
    return f"/market/listing/{quote(owner, safe='')}/{quote(listing_id, safe='')}"


def _facet(f: Filters, name: str, counts: dict[str, int], names: dict[str, str]) -> dict[str, Any]:
    current = str(getattr(f, name) or "")
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:FACET_SHOWN]
    if current and current not in counts:
        ordered.append((current, 0))
    options = [
        {
            "value": value,
            "label": names.get(value, value),
            "count": n,
            "selected": value == current,
            "href": f.url(**{name: "" if value == current else value}),
        }
        for value, n in ordered
    ]
    return {"name": name, "options": options, "clear": f.url(**{name: ""}) if current else None}


def _trl_facet(f: Filters, exact: dict[str, int]) -> dict[str, Any]:
    """TRL as "n or higher" (the filter is a minimum): each count is of levels >= n."""
    at_least: dict[str, int] = {}
    running = 0
    for level in range(9, 0, -1):
        running += exact.get(str(level), 0)
        if exact.get(str(level)):
            at_least[str(level)] = running
    options = [
        {
            "value": level,
            "label": level,
            "count": n,
            "selected": str(f.trl) == level,
            "href": f.url(trl="" if str(f.trl) == level else level),
        }
        for level, n in sorted(at_least.items())
    ]
    return {"name": "trl", "options": options, "clear": f.url(trl="") if f.trl else None}


def _pages(f: Filters, total: int, more: bool = False) -> dict[str, Any]:
    """The pager; ``more``: the total is a lower bound and there are results after this
    page, so the pager reaches at least one page beyond it."""
    last = max(1, min(MAX_PAGE, -(-total // PAGE_SIZE)))
    if more:
        last = max(last, min(MAX_PAGE, f.page + 1))
    around = sorted({1, last, *range(max(1, f.page - 2), min(last, f.page + 2) + 1)})
    links: list[dict[str, Any]] = []
    for number in around:
        if links and number - links[-1]["number"] > 1:
            links.append({"number": None, "href": None, "current": False})
        links.append({"number": number, "href": f.url(page=number), "current": number == f.page})
    return {
        "last": last,
        "links": links if last > 1 else [],
        "prev": f.url(page=f.page - 1) if f.page > 1 else None,
        "next": f.url(page=f.page + 1) if f.page < last else None,
    }


def search_page(
    rt: NodeRuntime, index: SearchIndex, cache: FacetCache, f: Filters
) -> dict[str, Any]:
    """The search page's context (blocking: run via ``index.run``)."""
    q = f.query()
    found = search(rt, index, q)
    more = cache.facets(rt, q)
    items = []
    for item in found["items"]:
        listing = item["listing"]
        fields = listing.get("fields", {})
        items.append(
            {
                "href": listing_url(item["owner"], listing["id"]),
                "title": fields.get("title") or {"en": listing["id"]},
                "summary": _snippet(fields.get("summary") or fields.get("need") or ""),
                "category": label(listing["category"]),
                "country": fields.get("country") or "",
                "sector": label(fields["sector"]) if fields.get("sector") else "",
                "trl": fields.get("trl") or fields.get("trl_min"),
                "stale": bool(item.get("stale")),
            }
        )
    facets = found["facets"]
    total = int(found["total"])
    # Past the search's counting cap the total is a lower bound ("more than 2,000").
    exact = bool(found.get("total_exact", True))
    beyond = not exact and found.get("next_offset") is not None
    return {
        "filters": f,
        "total": total,
        "total_exact": exact,
        "items": items,
        "first": q.offset + 1,
        "shown_to": q.offset + len(items),
        "pages": _pages(f, total, beyond),
        "facets": [
            {**_facet(f, "category", facets["category"], CATEGORIES), "title": N_("Category")},
            {**_facet(f, "country", facets["country"], {}), "title": N_("Country")},
            {**_facet(f, "sector", facets["sector"], SECTORS), "title": N_("Sector")},
            {**_facet(f, "ipc", more["ipc"], {}), "title": N_("IPC class")},
            {**_trl_facet(f, more["trl"]), "title": N_("Readiness (TRL) at least")},
        ],
    }


def _snippet(text: Any, size: int = 280) -> str:
    value = " ".join(str(text).split())
    return value if len(value) <= size else value[: size - 1].rstrip() + "…"


DETAILS: tuple[tuple[str, str], ...] = (
    ("organization", N_("Organization")),
    ("name", N_("Name")),
    ("affiliation", N_("Affiliation")),
    ("job_title", N_("Position")),
    ("sector", N_("Sector")),
    ("sectors", N_("Sectors")),
    ("trl", N_("Readiness (TRL)")),
    ("trl_min", N_("Readiness needed (TRL) at least")),
    ("stage", N_("Stage")),
    ("partnership", N_("Partnership wanted")),
    ("keywords", N_("Keywords")),
    ("ipc", N_("IPC codes")),
    ("isic", N_("ISIC codes")),
    ("fields", N_("Fields")),
    ("languages", N_("Languages")),
    ("city", N_("City")),
    ("country", N_("Country")),
    ("budget_range", N_("Budget")),
    ("website", N_("Website")),
    ("expires", N_("Open until")),
)
DATES = frozenset({"expires", "deadline", "start", "end"})


def _value(name: str, value: Any) -> list[dict[str, Any]]:
    """A field's value as pieces of text, each translated or not (listing text never)."""
    if isinstance(value, list):
        return [piece for v in value for piece in _value(name, v)]
    if isinstance(value, dict):  # an organization: its name, and its type in words
        out = [{"text": str(value["name"]), "translate": False}] if value.get("name") else []
        if value.get("type"):
            out.append({"text": label(value["type"]), "translate": value["type"] in ALL})
        return out
    if name in DATES and isinstance(value, int):
        return [{"text": ms_to_iso(value)[:10], "translate": False}]
    text = str(value)
    return [{"text": label(text), "translate": text in ALL}]


def detail_rows(fields: dict[str, Any]) -> list[dict[str, Any]]:
    """The listing's other fields, in a fixed order, each with its label (a message id)."""
    rows = []
    for name, title in DETAILS:
        value = fields.get(name)
        if value in (None, "", [], {}):
            continue
        rows.append({"name": name, "label": title, "values": _value(name, value)})
    return rows


def center_of(session: Session, rt: NodeRuntime, owner: str) -> dict[str, str]:
    """The owning center's name and country as the hub's directory gives them."""
    if owner == rt.node_id:
        return {"name": rt.config.name or owner, "country": rt.config.country}
    member = session.get(MemberRow, owner)
    if member is None:
        return {"name": owner, "country": ""}
    return {"name": member.name or owner, "country": member.country}


def listing_page(
    rt: NodeRuntime, index: SearchIndex, owner: str, listing_id: str
) -> dict[str, Any] | None:
    """One listing as public search holds it, or None when it is not in public search
    (blocking: run via ``index.run``)."""
    index.generation(rt)  # the hub's own listings indexed, when they or the policy changed
    now = rt.clock()
    with Session(rt.engine) as session:
        shown = session.scalar(
            select(SearchShownRow.shown)
            .join(SearchDocRow, SearchDocRow.id == SearchShownRow.doc_id)
            .where(
                SearchDocRow.owner == owner,
                SearchDocRow.listing_id == listing_id,
                SearchDocRow.expires > now,
            )
        )
        if shown is None:
            return None
        center = center_of(session, rt, owner)
    listing = json.loads(shown)
    fields = dict(listing.get("fields", {}))
    rights = listing.get("rights", {})
    return {
        "owner": owner,
        "listing": listing,
        "href": listing_url(owner, listing["id"]),
        "title": fields.get("title") or {"en": listing["id"]},
        "texts": [(name, str(fields[name])) for name in ("summary", "need") if fields.get(name)],
        "rows": detail_rows(fields),
        "category": label(listing["category"]),
        "ip_owner": [str(n) for n in rights.get("ip_owner") or []],
        "attribution": rights.get("attribution") if rights.get("attribution") else [],
        "name_logo_consent": bool(rights.get("name_logo_consent")),
        "center": center,
    }
