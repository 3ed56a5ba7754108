"""The console's sync page: how sync stands with each peer, the custody check against
the hub, and the re-verification of every summary held.

The figures are ``cattc sync status``'s (``peer_statuses``); the custody check is
``cattc custody check``'s: the hub's signed custody list, verified against the hub's
pinned keys, compared with what this node's feed gave the hub (``check_custody``);
the verification is ``cattc verify``'s (``verify_held``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from node.console.eois import when
from node.hub.custody import check_custody
from node.services.errors import ServiceError
from node.services.peers import PinnedKeys, peer_info
from node.services.sync_status import peer_statuses, verify_held
from node.ui.auth import require_role
from node.ui.i18n import N_
from node.ui.templating import render
from node.web.appkeys import RUNTIME, SYNC
from protocol.signing import SignatureError, verify_object
from sync.client import PeerClient, PeerError

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

SHOWN = 200
"""Listing ids shown per kind of custody difference; the rest are counted."""


class CustodyUnavailable(Exception):
    """The custody check could not run; ``reason`` is a message id for people."""

    def __init__(self, reason: str, detail: str = "", status: int = 502) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail
        self.status = status  # 502: the hub's answer failed; 409: no hub to ask


def statuses(rt: NodeRuntime) -> list[dict[str, Any]]:
    names = {m.node_id: f"{m.name} ({m.country})" for m in rt.directory.members()}
    out = []
    for p in peer_statuses(rt):
        out.append(
            {
                **p,
                "name": names.get(p["peer"], p["peer"]),
                "last_attempt_at": when(p["last_attempt"]),
                "last_success_at": when(p["last_success"]),
            }
        )
    return out


async def fetch_custody(request: web.Request) -> dict[str, Any]:
    """The hub's signed custody list of this node's listings, verified."""
    rt = request.app[RUNTIME]
    if rt.config.is_hub:
        raise CustodyUnavailable(
            N_("This node is the hub: it holds no custody of its own data."), status=409
        )
    hub = await rt.run(peer_info, rt, rt.config.hub_id)
    if hub is None or not hub.base_url:
        raise CustodyUnavailable(N_("This node has no hub configured."), status=409)
    client: PeerClient = request.app[SYNC].client
    try:
        doc = await client.get_json(hub.base_url, hub.node_id, "/federation/v1/custody")
        verify_object(doc, hub.node_id, PinnedKeys(hub))
    except PeerError as exc:
        raise CustodyUnavailable(N_("The hub could not be reached; try again."), str(exc)) from exc
    except SignatureError as exc:
        raise CustodyUnavailable(
            N_("The hub's answer does not carry a valid signature of the hub."), exc.message
        ) from exc
    if not isinstance(doc, dict) or doc.get("type") != "custody":
        raise CustodyUnavailable(N_("The hub answered with something other than a custody list."))
    if doc.get("audience") != rt.node_id:
        raise CustodyUnavailable(N_("The hub answered with something other than a custody list."))
    return doc


def _report(report: dict[str, Any]) -> dict[str, Any]:
    kinds = {}
    for kind in ("missing", "extra", "outdated"):
        ids: list[str] = report[kind]
        kinds[kind] = {"ids": ids[:SHOWN], "more": max(0, len(ids) - SHOWN), "count": len(ids)}
    matching = report["given"] - kinds["missing"]["count"] - kinds["outdated"]["count"]
    return {**report, "kinds": kinds, "matching": matching}


async def _page(request: web.Request, *, status: int = 200, **extra: Any) -> web.Response:
    rt = request.app[RUNTIME]
    peers = await rt.run(statuses, rt)
    context = {"peers": peers, "is_hub": rt.config.is_hub, "hub_id": rt.config.hub_id, **extra}
    return render(request, "console/sync.html", context, status=status)


@require_role("viewer")
async def sync_status(request: web.Request) -> web.Response:
    return await _page(request)


@require_role("editor")
async def custody_check(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    try:
        doc = await fetch_custody(request)
        report = await rt.run(check_custody, rt, doc)
    except CustodyUnavailable as exc:
        return await _page(
            request, status=exc.status, custody_problem=exc.reason, custody_detail=exc.detail
        )
    except ServiceError as exc:
        return await _page(
            request,
            status=502,
            custody_problem=N_("The hub's custody list is not valid."),
            custody_detail=exc.message,
        )
    return await _page(request, custody=_report(report))


@require_role("editor")
async def verify(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    report = await rt.run(verify_held, rt)
    shown = report["bad"][:SHOWN]
    return await _page(
        request, verified={**report, "shown": shown, "more": len(report["bad"]) - len(shown)}
    )
