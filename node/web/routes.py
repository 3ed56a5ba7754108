"""Every route of a node, in one place."""

from __future__ import annotations

from aiohttp import web

from node.web import admin_listings, admin_status, public


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/.well-known/cattc-node", public.identity)
    r.add_get("/healthz", public.health)
    r.add_get("/admin/v1/status", admin_status.status)
    r.add_get("/admin/v1/listings", admin_listings.list_listings)
    r.add_post("/admin/v1/listings", admin_listings.create_listing)
    r.add_post("/admin/v1/listings/import", admin_listings.import_listings)
    r.add_get("/admin/v1/listings/{listing_id}", admin_listings.get_listing)
    r.add_put("/admin/v1/listings/{listing_id}", admin_listings.update_listing)
    r.add_post("/admin/v1/listings/{listing_id}/withdraw", admin_listings.withdraw_listing)
    r.add_delete("/admin/v1/listings/{listing_id}", admin_listings.withdraw_listing)
