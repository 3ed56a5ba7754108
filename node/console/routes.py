"""Routes of the center console."""

from __future__ import annotations

from aiohttp import web

from node.console import home


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/console", home.home)
    from node.console import audit_page, users

    users.setup(app)
    audit_page.setup(app)
    from node.console import eois, notices, sync_page

    r.add_get("/console/matches", notices.match_list)
    r.add_get("/console/matches/{notice_id}", notices.match_page)
    r.add_post("/console/matches/{notice_id}/interest", notices.express_interest)
    r.add_get("/console/eois", eois.eoi_list)
    r.add_get("/console/eois/{eoi_id}", eois.eoi_page)
    r.add_post("/console/eois/{eoi_id}/answer", eois.eoi_answer)
    r.add_post("/console/eois/{eoi_id}/send", eois.eoi_resend)
    r.add_get("/console/sync", sync_page.sync_status)
    r.add_post("/console/sync/custody", sync_page.custody_check)
    r.add_post("/console/sync/verify", sync_page.verify)
    from node.console import sharing

    r.add_get("/console/sharing", sharing.grid_page)
    r.add_post("/console/sharing/edit", sharing.draft_page)
    r.add_get("/console/sharing/cell", sharing.cell_page)
    r.add_post("/console/sharing/cell", sharing.cell_page)
    r.add_post("/console/sharing/cell/save", sharing.cell_save)
    r.add_get("/console/sharing/text", sharing.text_page)
    r.add_post("/console/sharing/text", sharing.text_page)
    r.add_post("/console/sharing/preview", sharing.preview_page)
    r.add_post("/console/sharing/apply", sharing.apply_page)
    r.add_get("/console/sharing/explain/{listing_id}", sharing.explain_page)
    from node.console import listings

    listings.setup(app)
    from node.console import shared

    shared.setup(app)
