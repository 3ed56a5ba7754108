"""Every API route of a node, in one place: ``setup_routes`` those of every node,
``setup_hub_routes`` those only the hub serves (``node.hub.app_setup.setup_hub``)."""

from __future__ import annotations

from aiohttp import web

from node.web import (
    admin_listings,
    admin_policy,
    admin_status,
    federation,
    hub_routes,
    openapi,
    public,
)


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/.well-known/cattc-node", public.identity)
    r.add_get("/healthz", public.health)
    r.add_get("/openapi.json", openapi.openapi_json)
    r.add_get("/federation/v1/feed", federation.feed)
    r.add_post("/federation/v1/notify", federation.notify)
    r.add_get("/admin/v1/status", admin_status.status)
    r.add_get("/admin/v1/listings", admin_listings.list_listings)
    r.add_post("/admin/v1/listings", admin_listings.create_listing)
    r.add_post("/admin/v1/listings/import", admin_listings.import_listings)
    r.add_get("/admin/v1/listings/{listing_id}", admin_listings.get_listing)
    r.add_put("/admin/v1/listings/{listing_id}", admin_listings.update_listing)
    r.add_post("/admin/v1/listings/{listing_id}/withdraw", admin_listings.withdraw_listing)
    r.add_delete("/admin/v1/listings/{listing_id}", admin_listings.withdraw_listing)
    r.add_get("/admin/v1/policy", admin_policy.show)
    r.add_put("/admin/v1/policy", admin_policy.apply)
    r.add_get("/admin/v1/policy/versions", admin_policy.versions)
    r.add_post("/admin/v1/policy/check", admin_policy.check)
    r.add_post("/admin/v1/policy/diff", admin_policy.diff)
    r.add_get("/admin/v1/policy/explain/{listing_id}", admin_policy.explain)
    r.add_get("/admin/v1/views/{listing_id}", admin_policy.view)


def setup_hub_routes(app: web.Application) -> None:
    """The hub's own API: on a member node these paths are not routes at all."""
    r = app.router
    r.add_get("/federation/v1/directory", federation.directory)
    r.add_get("/federation/v1/custody", federation.custody)
    r.add_post("/federation/v1/eoi", federation.eoi)
    r.add_post("/federation/v1/eoi/reply", federation.eoi_reply)
    r.add_get("/hub/status", hub_routes.status)
    r.add_get("/hub/dashboard", hub_routes.dashboard)
    r.add_get("/hub/static/{name}", hub_routes.static_file)
    r.add_get("/metrics", hub_routes.metrics)
    r.add_get("/api/v1/search", hub_routes.public_search)
    r.add_get("/admin/v1/matches", hub_routes.matches)
