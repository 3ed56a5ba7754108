"""Routes of the marketplace (the hub only): the search page at ``/``, a listing's page
with its "Express interest" form, and where that form posts. No account is needed; the
form carries a token bound to a cookie (double submit) and a field people leave empty."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from node.market import guard, interest
from node.market.facets import FacetCache
from node.market.guard import Guard
from node.market.pages import listing_page, listing_url, parse_filters, search_page
from node.ui.errors import page_error
from node.ui.i18n import N_
from node.ui.templating import render, see_other
from node.web.appkeys import RUNTIME, SEARCH_INDEX
from node.web.client import client_address, networks
from node.web.requests import FormRefused, read_small_form

logger = logging.getLogger(__name__)
GUARD = web.AppKey("market_guard", Guard)
FACETS = web.AppKey("market_facets", FacetCache)
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
HONEYPOT = "website"
FORM_MAX_BYTES = 64 * 1024


async def home(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    filters = parse_filters(request.query)
    index, cache = request.app[SEARCH_INDEX], request.app[FACETS]
    context = await index.run(search_page, rt, index, cache, filters)
    return render(request, "market/home.html", context)


def _ids(request: web.Request) -> tuple[str, str] | None:
    owner, listing_id = request.match_info["owner"], request.match_info["listing_id"]
    if not (_ID.match(owner) and _ID.match(listing_id)):
        return None
    return owner, listing_id


def _not_found(request: web.Request) -> web.Response:
    context = {
        "heading": N_("Listing not found"),
        "message": N_("This listing is not in the marketplace, or no longer is."),
    }
    return render(request, "market/message.html", context, status=404)


async def _listing_answer(
    request: web.Request,
    item: dict[str, Any] | None,
    form_action: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    """The listing's page (or, for a listing not shown, the bare form) with a form token
    bound to the visitor's cookie, which is set when it has none."""
    rt = request.app[RUNTIME]
    cookie = guard.visitor_cookie(request)
    fresh = not cookie
    if fresh:
        cookie = guard.new_cookie_value()
    g = request.app[GUARD]
    secret = await rt.run(g.secret, rt.engine)
    context = {
        "item": item,
        "form_action": form_action,
        "form_token": g.form_token(secret, cookie),
        "values": values or {},
        "errors": errors or {},
    }
    response = render(request, "market/listing.html", context, status=status)
    if fresh:
        guard.set_visitor_cookie(request, response, cookie)
    return response


async def listing(request: web.Request) -> web.Response:
    ids = _ids(request)
    if ids is None:
        return _not_found(request)
    rt = request.app[RUNTIME]
    index = request.app[SEARCH_INDEX]
    item = await index.run(listing_page, rt, index, *ids)
    if item is None:
        return _not_found(request)
    return await _listing_answer(request, item, listing_url(*ids) + "/interest")


def _sent() -> web.Response:
    return see_other("/market/sent")


async def sent(request: web.Request) -> web.Response:
    context = {
        "heading": N_("Sent to the center"),
        "message": N_("Thank you. Your message was sent to the center that holds this listing."),
        "detail": N_("If the center wants to take it further, it will write to you by email."),
    }
    return render(request, "market/message.html", context)


async def express_interest(request: web.Request) -> web.Response:
    """Take a visitor's interest: the same answer whether the listing is shown or not."""
    ids = _ids(request)
    if ids is None:
        return _sent()  # nothing could be about such ids; nothing is kept
    rt = request.app[RUNTIME]
    g = request.app[GUARD]
    try:
        form = await read_small_form(request, FORM_MAX_BYTES)
    except FormRefused as exc:
        if exc.status == 413:
            return _message(request, 413, N_("Message too long"), N_("The form is too large."))
        return page_error(request, exc.status)
    secret = await rt.run(g.secret, rt.engine)
    token = form.get("form_token")
    if not g.token_ok(
        secret, guard.visitor_cookie(request), token if isinstance(token, str) else ""
    ):
        return _message(
            request,
            403,
            N_("Form expired"),
            N_("This form has expired. Go back, reload the page and send it again."),
            back=listing_url(*ids),
            back_label=N_("Back to the listing"),
        )
    if form.get(HONEYPOT):
        logger.info("visitor interest in %s/%s: honeypot filled, not kept", *ids)
        return _sent()
    visitor, errors = interest.validate(form)
    if errors:
        index = request.app[SEARCH_INDEX]
        item = await index.run(listing_page, rt, index, *ids)
        values = {f: getattr(visitor, f) for f in interest.FIELDS}
        action = listing_url(*ids) + "/interest"
        return await _listing_answer(
            request, item, action, values=values, errors=errors, status=422
        )
    trusted = networks(rt.config.trusted_proxies)
    address = g.address_hash(secret, client_address(request, trusted))
    try:
        interest_id, state = await rt.run(interest.take, rt, *ids, visitor, address)
    except interest.TooMany as exc:
        response = _message(
            request,
            429,
            N_("Too many messages"),
            N_("You have sent many messages in a short time. Please try again later."),
        )
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    if state == "queued":
        await rt.run(interest.forward, rt, interest_id)
    return _sent()


def _message(
    request: web.Request, status: int, heading: str, message: str, **more: str
) -> web.Response:
    context: dict[str, Any] = {"heading": heading, "message": message, "alert": True, **more}
    return render(request, "market/message.html", context, status=status)


async def _relay_left_over(app: web.Application) -> AsyncIterator[None]:
    """At start, relay what an earlier run stored but did not pass on."""
    rt = app[RUNTIME]
    done = await rt.run(interest.forward_queued, rt)
    if done:
        logger.info("visitors' interests left queued, now: %s", done)
    yield


async def _close_search(app: web.Application) -> None:
    """The search's threads end with the app (after the hub's context: none is busy)."""
    index = app.get(SEARCH_INDEX)
    if index is not None:
        index.close()


def setup(app: web.Application) -> None:
    app[GUARD] = Guard()
    app[FACETS] = FacetCache()
    app.cleanup_ctx.append(_relay_left_over)
    app.on_cleanup.append(_close_search)
    r = app.router
    r.add_get("/", home)
    r.add_get("/market/listing/{owner}/{listing_id}", listing)
    r.add_post("/market/listing/{owner}/{listing_id}/interest", express_interest)
    r.add_get("/market/sent", sent)
