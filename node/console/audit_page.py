"""The console's audit log page: who changed what and when, newest first, filtered by
actor, action and dates (UTC days, both ends included), ``PAGE_SIZE`` entries a page.
Every signed-in user may read it; nobody can change it here."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from node.ui.audit import Filters, search
from node.ui.auth import require_role
from node.ui.i18n import N_
from node.ui.templating import render
from node.web.appkeys import RUNTIME
from node.web.numbers import count
from protocol.timeutil import ms_to_iso

PATH = "/console/audit"
PAGE_SIZE = 50
DAY_MS = 86_400_000


def _day(text: str) -> int | None:
    """The start of UTC day ``YYYY-MM-DD`` in ms; ValueError if it is not one."""
    if not text:
        return None
    day = dt.date.fromisoformat(text) if len(text) == 10 else None
    if day is None:
        raise ValueError(text)
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


@require_role("viewer")
async def audit_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    q = request.query
    values = {
        "actor": q.get("actor", "")[:64],
        "action": q.get("action", "")[:64],
        "since": q.get("since", "")[:10],
        "until": q.get("until", "")[:10],
    }
    errors: dict[str, str] = {}
    bounds: dict[str, int | None] = {}
    for key in ("since", "until"):
        try:
            bounds[key] = _day(values[key])
        except ValueError:
            errors[key] = N_("Enter a date as YYYY-MM-DD.")
            values[key] = ""
            bounds[key] = None
    raw_page = q.get("page", "1")
    page = count(raw_page, 6) or 0
    if page < 1:
        errors["page"] = N_("There is no such page.")
        page = 1
    until = bounds["until"]
    filters = Filters(
        actor=values["actor"],
        action=values["action"],
        since_ms=bounds["since"],
        until_ms=until + DAY_MS if until is not None else None,
    )
    result = await rt.run(
        search, rt.engine, filters, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    pages = max(1, -(-result.total // PAGE_SIZE))
    if page > pages and "page" not in errors:
        errors["page"] = N_("There is no such page.")
    query = {k: v for k, v in values.items() if v}
    context: dict[str, Any] = {
        "entries": [{**asdict(e), "when": ms_to_iso(e.at - e.at % 1000)} for e in result.entries],
        "total": result.total,
        "actors": result.actors,
        "actions": result.actions,
        "values": values,
        "errors": errors,
        "page": page,
        "pages": pages,
        "prev_url": _url(query, page - 1) if 1 < page <= pages else "",
        "next_url": _url(query, page + 1) if page < pages else "",
    }
    return render(request, "console/audit.html", context, status=400 if errors else 200)


def _url(query: dict[str, str], page: int) -> str:
    return f"{PATH}?{urlencode({**query, 'page': str(page)})}"


def setup(app: web.Application) -> None:
    app.router.add_get(PATH, audit_page)
