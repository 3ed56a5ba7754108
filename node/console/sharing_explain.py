"""The console's "why does this audience see this listing?": the rule behind a listing's
view for one audience (``explain_listing``) and the view itself, under the active policy.
The listing pages link here."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from node.console.sharing_forms import country_label, pages
from node.console.sharing_preview import grid_source, show_value
from node.services.errors import NotFound
from node.services.policy_ops import explain_listing
from node.ui.auth import require_role
from node.ui.templating import render
from node.web.appkeys import RUNTIME
from policies.model import NODE_ID_RE, STAR


@require_role("viewer")
@pages
async def explain_page(request: web.Request) -> web.Response:
    """Why an audience sees (or does not see) a listing, and the exact view."""
    rt = request.app[RUNTIME]
    listing_id = request.match_info["listing_id"]
    audience = request.query.get("audience", "").strip()[:32]
    source = await rt.run(grid_source, rt)
    choices = [c.key for c in source.columns if c.kind != "group"]
    context: dict[str, Any] = {
        "listing_id": listing_id,
        "audience": audience,
        "choices": choices,
        "country_label": country_label,
        "result": None,
        "problem": "",
    }
    if audience and not (audience == STAR or NODE_ID_RE.match(audience)):
        context["problem"] = "bad_audience"
        return render(request, "console/sharing_explain.html", context, status=400)
    if not audience:
        return render(request, "console/sharing_explain.html", context)
    try:
        result = await rt.run(explain_listing, rt, listing_id, audience)
    except NotFound:
        context["problem"] = "no_listing"
        return render(request, "console/sharing_explain.html", context, status=404)
    view = result["view"]
    fields = view["listing"]["fields"] if view else {}
    context["result"] = result
    context["view_fields"] = [(k, show_value(k, v)) for k, v in sorted(fields.items())]
    context["view_json"] = (
        json.dumps(view, ensure_ascii=False, indent=2, sort_keys=True) if view else ""
    )
    return render(request, "console/sharing_explain.html", context)
