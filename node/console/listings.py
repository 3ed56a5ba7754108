"""The console's listings: the table with filters, each listing's page, the create and
edit forms (each field's error next to it), and withdrawal with a confirmation step.

Every change goes through ``ListingService`` and is written to the audit log with the
staff user's name, right after the change (the service commits its own transaction).
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from node.console import listing_form
from node.console.listing_fields import CATEGORY_LABELS, CHOICE_LABELS, Message
from node.console.listing_query import STATUSES, Filters, find, table_row
from node.runtime import NodeRuntime
from node.services.errors import Conflict, InvalidListing, NotFound
from node.services.listings import Also, StoredListing
from node.ui import audit
from node.ui.auth import Handler, require_role
from node.ui.i18n import LANGUAGES, N_
from node.ui.keys import FORM, STAFF_USER
from node.ui.templating import render, see_other
from node.web.appkeys import RUNTIME
from node.web.numbers import count
from node.web.requests import parse_form
from protocol.listing import CATEGORIES
from protocol.timeutil import ms_to_date

STALE = N_(
    "Someone changed this listing after you opened the form, so your changes were not "
    "saved. Open the listing again to see its current values."
)


def _common() -> dict[str, Any]:
    return {"category_labels": CATEGORY_LABELS, "choice_labels": CHOICE_LABELS}


@require_role("viewer")
async def listings_page(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    filters = Filters.of(request)
    items, nxt = await rt.run(find, rt, filters)
    context = {
        **_common(),
        "filters": filters,
        "rows": [table_row(s) for s in items],
        "next_after": nxt,
        "categories": CATEGORIES,
        "statuses": STATUSES,
    }
    return render(request, "console/listings.html", context)


class Missing(Exception):
    """No such listing (or import job) here: answered with a page saying so (404)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def or_missing(handler: Handler) -> Handler:
    """Answer ``Missing`` with the console's "not found" page, not the API's JSON."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Missing as exc:
            return render(request, "console/listing_missing.html", {"what": exc.what}, status=404)

    return wrapped


async def _stored(request: web.Request) -> StoredListing:
    rt = request.app[RUNTIME]
    try:
        return await rt.run(rt.listings.get, request.match_info["listing_id"])
    except NotFound:
        raise Missing("listing") from None


@require_role("viewer")
@or_missing
async def listing_page(request: web.Request) -> web.Response:
    stored = await _stored(request)
    rec = stored.record
    category = str(rec["category"])
    values = listing_form.form_values(category, rec)
    context = {
        **_common(),
        "listing": rec,
        "withdrawn": stored.withdrawn,
        "rows": listing_form.rows(category, values, {}, LANGUAGES),
        "created": ms_to_date(rec["created"]),
        "updated": ms_to_date(rec["updated"]),
        "done": request.query.get("done", ""),
    }
    return render(request, "console/listing_view.html", context)


# -- create and edit -----------------------------------------------------------------------
def _form_page(
    request: web.Request,
    category: str,
    values: dict[str, Any],
    errors: dict[str, Message],
    listing: dict[str, Any] | None,
    status: int = 200,
    seen_version: str = "",
) -> web.Response:
    rows = listing_form.rows(category, values, errors, LANGUAGES)
    summary = [
        {"field": r["field"], "label_params": r["label_params"], "error": r["error"]}
        for r in rows
        if r["error"] is not None
    ]
    context = {
        **_common(),
        "category": category,
        "rows": rows,
        "summary": summary,
        "general": errors.get(""),
        "listing": listing,
        "seen_version": seen_version or (str(listing["version"]) if listing else ""),
    }
    return render(request, "console/listing_form.html", context, status=status)


@require_role("editor")
async def new_listing(request: web.Request) -> web.Response:
    category = request.query.get("category", "")
    if category not in CATEGORIES:
        return render(request, "console/listing_new.html", {**_common(), "categories": CATEGORIES})
    rt = request.app[RUNTIME]
    values = listing_form.form_values(category, {"country": rt.config.country})
    return _form_page(request, category, values, {}, None)


def _probe(rt: NodeRuntime, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with what the service fills in on creation, to validate it whole."""
    now = rt.clock()
    return {
        "id": "new",
        "owner": rt.node_id,
        "version": 1,
        "created": now,
        "updated": now,
        **record,
    }


def _service_error(exc: InvalidListing | Conflict) -> dict[str, Message]:
    return {"": Message(N_("The listing is not valid: %(reason)s"), {"reason": exc.message})}


def _audit(rt: NodeRuntime, actor: str, action: str) -> Also:
    return audit.listing_change(rt.clock, actor, action)


def _create(rt: NodeRuntime, record: dict[str, Any], actor: str) -> dict[str, Any]:
    return rt.listings.create(record, also=_audit(rt, actor, "listing.create"))


class Stale(Exception):
    """The listing changed since the form was opened."""


def _update(
    rt: NodeRuntime, listing_id: str, record: dict[str, Any], actor: str, seen_version: int
) -> Any:
    before = rt.listings.get(listing_id).record["version"]
    if before != seen_version:
        raise Stale()
    return rt.listings.update(listing_id, record, also=_audit(rt, actor, "listing.update"))


def _withdraw(rt: NodeRuntime, listing_id: str, actor: str) -> dict[str, Any]:
    return rt.listings.withdraw(listing_id, also=_audit(rt, actor, "listing.withdraw"))


async def _form(request: web.Request) -> MultiDictProxy[Any]:
    """The posted form: the one ``require_role`` read for its CSRF token, or read now
    (a request whose token came in the X-CSRF-Token header)."""
    form = request.get(FORM)
    if form is None:
        form = await parse_form(request)
        request[FORM] = form
    return form


def _actor(request: web.Request) -> str:
    user = request[STAFF_USER]
    return user.name if user is not None else "?"


@require_role("editor")
async def create_listing(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    form = await _form(request)
    category = str(form.get("category", ""))
    if category not in CATEGORIES:
        raise web.HTTPBadRequest(text="unknown category")
    values = listing_form.posted_values(category, form)
    record, errors = listing_form.form_to_record(category, values)
    for name, message in listing_form.check(category, _probe(rt, record)).items():
        errors.setdefault(name, message)
    if not errors:
        try:
            wire = await rt.run(_create, rt, record, _actor(request))
        except (InvalidListing, Conflict) as exc:
            errors = _service_error(exc)
        else:
            return see_other(f"/console/listings/{wire['id']}?done=created")
    return _form_page(request, category, values, errors, None, status=422)


@require_role("editor")
@or_missing
async def edit_listing(request: web.Request) -> web.Response:
    stored = await _stored(request)
    if stored.withdrawn:
        return see_other(f"/console/listings/{stored.id}")
    category = str(stored.record["category"])
    values = listing_form.form_values(category, stored.record)
    return _form_page(request, category, values, {}, stored.record)


@require_role("editor")
@or_missing
async def update_listing(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    stored = await _stored(request)
    form = await _form(request)
    category = str(stored.record["category"])
    values = listing_form.posted_values(category, form)
    record, errors = listing_form.form_to_record(category, values, stored.record)
    for name, message in listing_form.check(category, record).items():
        errors.setdefault(name, message)
    seen = str(form.get("seen_version", ""))
    if not errors:
        try:
            version = count(seen, 11) or 0
            await rt.run(_update, rt, stored.id, record, _actor(request), version)
        except Stale:
            errors = {"": Message(STALE)}
        except (InvalidListing, Conflict) as exc:
            errors = _service_error(exc)
        else:
            return see_other(f"/console/listings/{stored.id}?done=saved")
    return _form_page(
        request, category, values, errors, stored.record, status=422, seen_version=seen[:12]
    )


# -- withdraw ------------------------------------------------------------------------------
@require_role("editor")
@or_missing
async def withdraw_page(request: web.Request) -> web.Response:
    stored = await _stored(request)
    return render(
        request,
        "console/listing_withdraw.html",
        {"listing": stored.record, "withdrawn": stored.withdrawn},
    )


@require_role("editor")
@or_missing
async def withdraw_listing(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    stored = await _stored(request)
    if not stored.withdrawn:
        await rt.run(_withdraw, rt, stored.id, _actor(request))
    return see_other(f"/console/listings/{stored.id}?done=withdrawn")


def setup(app: web.Application) -> None:
    """The listing pages, the import and the export (fixed paths before ``{listing_id}``)."""
    from node.console import export, imports

    r = app.router
    r.add_get("/console/listings", listings_page)
    r.add_get("/console/listings/new", new_listing)
    r.add_post("/console/listings/new", create_listing)
    r.add_get("/console/listings/export", export.export_listings)
    imports.setup(app)
    r.add_get("/console/listings/{listing_id}", listing_page)
    r.add_get("/console/listings/{listing_id}/edit", edit_listing)
    r.add_post("/console/listings/{listing_id}/edit", update_listing)
    r.add_get("/console/listings/{listing_id}/withdraw", withdraw_page)
    r.add_post("/console/listings/{listing_id}/withdraw", withdraw_listing)
