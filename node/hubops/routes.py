"""Routes of the hub operator's console (registered on the hub only)."""

from __future__ import annotations

from aiohttp import web

from node.hubops import directory, interest, nav, sync
from node.ui.auth import require_role
from node.ui.i18n import N_
from node.ui.templating import see_other

# Words the pages show from data (key sources, sync and queue states): marked here so
# that the catalogs carry them.
SHOWN_WORDS = (
    N_("operator"),
    N_("fetch"),
    N_("transition"),
    N_("directory"),
    N_("ok"),
    N_("lagging"),
    N_("failing"),
    N_("unreachable"),
    N_("stale"),
    N_("never synced"),
    N_("suspended"),
    N_("queued"),
    N_("forwarded"),
    N_("dropped"),
)


@require_role("viewer")
async def index(request: web.Request) -> web.Response:
    del request
    return see_other(directory.PAGE)


def setup(app: web.Application) -> None:
    nav.install(app)
    r = app.router
    r.add_get("/console/hub", index)
    r.add_get("/console/hub/directory", directory.directory_page)
    r.add_post("/console/hub/directory/fetch", directory.fetch_key)
    r.add_post("/console/hub/directory/add", directory.add_member)
    r.add_get("/console/hub/directory/{node_id}/edit", directory.edit_page)
    r.add_post("/console/hub/directory/{node_id}/edit", directory.edit_member)
    r.add_get("/console/hub/directory/{node_id}/status", directory.status_page)
    r.add_post("/console/hub/directory/{node_id}/status", directory.change_status)
    r.add_get("/console/hub/sync", sync.sync_page)
    r.add_get("/console/hub/interest", interest.interest_page)
    r.add_post("/console/hub/interest/{interest_id}/drop", interest.drop_interest)
