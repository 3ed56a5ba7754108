"""The directory page (``/console/hub/directory``): the members, adding one with its keys
fetched from its own identity document and confirmed by the operator, updating one,
suspending and reactivating.

Every change goes through ``DirectoryService`` (the same rules as ``cattc directory``)
and is audited in its transaction with the staff member's name. Adding is two posts:
``fetch`` shows the fingerprints of the keys the member's URL serves; ``add`` carries
back the keys that were shown and saves them only if the URL still serves exactly those.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from node.hubops.member_form import MemberForm, read_member_form, shown_keys
from node.services.directory import Member
from node.services.errors import ServiceError
from node.services.member_identity import IdentityUnavailable, fetch_member_keys, key_fingerprint
from node.services.member_keys import FETCH
from node.services.sync_status import peer_statuses
from node.ui.audit import record
from node.ui.auth import form_of, require_role
from node.ui.i18n import N_
from node.ui.keys import STAFF_USER
from node.ui.templating import render, see_other
from node.web.appkeys import RUNTIME, SYNC

PAGE = "/console/hub/directory"
NOTES = {
    "added": N_("The member was added. The new directory version goes out with the next sync."),
    "updated": N_("The member was updated."),
    "suspended": N_("The member was suspended: its calls are refused and nothing is pulled."),
    "active": N_("The member was reactivated."),
}
KEY_CHANGED = N_(
    "The key served at this address changed after you fetched it. Nothing was saved: "
    "fetch the key again and compare the fingerprints."
)
NOT_SHOWN = N_("The confirmation did not carry the keys that were shown. Fetch the key again.")


def _actor(request: web.Request) -> str:
    user = request[STAFF_USER]
    assert user is not None  # require_role let the request through
    return user.name


def _auditor(request: web.Request, action: str, target: str, detail: dict[str, Any]) -> Any:
    rt = request.app[RUNTIME]
    actor, at = _actor(request), rt.clock()

    def audit(session: Session, version: int) -> None:
        text = json.dumps({**detail, "directory_version": version}, sort_keys=True)
        record(session, at=at, actor=actor, action=action, target=target, detail=text)

    return audit


def _fingerprints(keys: dict[str, dict[str, Any]], sources: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "key": str(info["key"]),
            "fingerprint": key_fingerprint(str(info["key"])),
            "source": sources.get(name, ""),
            "expired": info.get("expired_at") is not None,
        }
        for name, info in sorted(keys.items())
    ]


def _members_view(rt: Any) -> dict[str, Any]:
    states = {p["peer"]: p for p in peer_statuses(rt)}
    rows = []
    for m in rt.directory.members():
        peer = states.get(m.node_id, {})
        rows.append(
            {
                "member": m,
                "keys": _fingerprints(m.keys, m.sources),
                "state": "suspended" if m.status == "suspended" else peer.get("state", ""),
                "last_success": peer.get("last_success"),
            }
        )
    return {"members": rows, "version": rt.directory.version()}


async def _page(
    request: web.Request, *, form: MemberForm | None = None, error: str = "", status: int = 200
) -> web.Response:
    rt = request.app[RUNTIME]
    view = await rt.run(_members_view, rt)
    note = NOTES.get(request.query.get("done", ""), "")
    context = {**view, "form": form or MemberForm(), "error": error, "note": note}
    return render(request, "hubops/directory.html", context, status=status)


@require_role("viewer")
async def directory_page(request: web.Request) -> web.Response:
    return await _page(request)


@require_role("admin")
async def fetch_key(request: web.Request) -> web.Response:
    """First post: check the form, fetch the identity, show what would be saved."""
    form = read_member_form(await form_of(request))
    if not form.ok:
        return await _page(request, form=form, status=400)
    rt = request.app[RUNTIME]
    if await rt.run(rt.directory.get, form.node_id) is not None:
        form.errors["node_id"] = N_("This node is a member already: update it in the table.")
        return await _page(request, form=form, status=409)
    try:
        keys = await fetch_member_keys(request.app[SYNC].session, form.base_url, form.node_id)
    except IdentityUnavailable as exc:
        form.errors["base_url"] = N_("The key could not be fetched from this address.")
        return await _page(request, form=form, error=exc.message, status=400)
    context = {
        "form": form,
        "keys": _fingerprints(keys, dict.fromkeys(keys, FETCH)),
        "shown": json.dumps({n: str(i["key"]) for n, i in sorted(keys.items())}),
    }
    return render(request, "hubops/confirm_add.html", context)


@require_role("admin")
async def add_member(request: web.Request) -> web.Response:
    """Second post: save the keys that were shown, if the member still serves them."""
    data = await form_of(request)
    form = read_member_form(data)
    if not form.ok:
        return await _page(request, form=form, status=400)
    shown = shown_keys(str(data.get("keys", "")))
    if shown is None:
        return await _page(request, form=form, error=NOT_SHOWN, status=400)
    try:
        keys = await fetch_member_keys(request.app[SYNC].session, form.base_url, form.node_id)
    except IdentityUnavailable as exc:
        form.errors["base_url"] = N_("The key could not be fetched from this address.")
        return await _page(request, form=form, error=exc.message, status=400)
    if {n: str(i["key"]) for n, i in keys.items()} != shown:
        return await _page(request, form=form, error=KEY_CHANGED, status=409)
    member = Member(
        node_id=form.node_id,
        country=form.country,
        name=form.name,
        base_url=form.base_url,
        keys=keys,
        groups=form.groups,
        sources=dict.fromkeys(keys, FETCH),
    )
    detail = {
        "name": form.name,
        "country": form.country,
        "base_url": form.base_url,
        "groups": form.groups,
        "keys": {n: key_fingerprint(k) for n, k in sorted(shown.items())},
    }
    audit = _auditor(request, "directory.add", form.node_id, detail)
    rt = request.app[RUNTIME]
    try:
        await rt.run(rt.directory.upsert, member, create=True, audit=audit)
    except ServiceError as exc:
        return await _page(request, form=form, error=exc.message, status=409)
    return see_other(f"{PAGE}?done=added")


async def _member(request: web.Request) -> Member | None:
    rt = request.app[RUNTIME]
    member: Member | None = await rt.run(rt.directory.get, request.match_info["node_id"])
    return member


def _missing(request: web.Request) -> web.Response:
    context = {"node_id": request.match_info["node_id"]}
    return render(request, "hubops/missing.html", context, status=404)


@require_role("admin")
async def edit_page(request: web.Request) -> web.Response:
    member = await _member(request)
    if member is None:
        return _missing(request)
    form = MemberForm(member.node_id, member.name, member.country, member.base_url, member.groups)
    return render(request, "hubops/edit.html", {"form": form, "error": ""})


@require_role("admin")
async def edit_member(request: web.Request) -> web.Response:
    member = await _member(request)
    if member is None:
        return _missing(request)
    form = read_member_form(await form_of(request), with_id=False)
    form.node_id, form.country = member.node_id, member.country
    if not form.ok:
        return render(request, "hubops/edit.html", {"form": form, "error": ""}, status=400)
    before = {"name": member.name, "base_url": member.base_url, "groups": sorted(member.groups)}
    member.name, member.base_url, member.groups = form.name, form.base_url, form.groups
    after = {"name": member.name, "base_url": member.base_url, "groups": member.groups}
    changed = {k: {"from": before[k], "to": v} for k, v in after.items() if before[k] != v}
    if not changed:
        return see_other(f"{PAGE}?done=updated")
    rt = request.app[RUNTIME]
    audit = _auditor(request, "directory.update", member.node_id, changed)
    try:
        await rt.run(rt.directory.upsert, member, create=False, audit=audit)
    except ServiceError as exc:
        context = {"form": form, "error": exc.message}
        return render(request, "hubops/edit.html", context, status=409)
    return see_other(f"{PAGE}?done=updated")


def _target_status(value: Any) -> str | None:
    return str(value) if value in ("active", "suspended") else None


def _no_such_status(request: web.Request) -> web.Response:
    return render(request, "hubops/missing.html", {"node_id": ""}, status=400)


@require_role("admin")
async def status_page(request: web.Request) -> web.Response:
    """The confirmation asked before a suspension or a reactivation."""
    member = await _member(request)
    if member is None:
        return _missing(request)
    target = _target_status(request.query.get("to"))
    if target is None:
        return _no_such_status(request)
    return render(request, "hubops/status.html", {"member": member, "target": target})


@require_role("admin")
async def change_status(request: web.Request) -> web.Response:
    member = await _member(request)
    if member is None:
        return _missing(request)
    target = _target_status((await form_of(request)).get("status"))
    if target is None:
        return _no_such_status(request)
    if member.status == target:
        return see_other(f"{PAGE}?done={target}")
    rt = request.app[RUNTIME]
    action = "directory.suspend" if target == "suspended" else "directory.reactivate"
    audit = _auditor(request, action, member.node_id, {"from": member.status, "to": target})
    await rt.run(rt.directory.set_status, member.node_id, target, audit=audit)
    return see_other(f"{PAGE}?done={target}")
