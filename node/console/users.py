"""The console's staff users page (admins only): list, add, change a role, disable and
enable. Every change goes to the audit log in its own transaction (``node.ui.accounts``)
and ends the sessions of the user it changes. An admin cannot change their own account
here, so nobody locks themself out by a slip; the last enabled admin stays one."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from node.ui.accounts import (
    ROLES,
    LastAdminError,
    NameTakenError,
    StaffUser,
    create_user,
    get_user,
    list_users,
    set_disabled,
    set_role,
)
from node.ui.auth import form_of, require_role
from node.ui.i18n import N_
from node.ui.keys import STAFF_USER
from node.ui.templating import render, see_other
from node.web.appkeys import RUNTIME
from node.web.numbers import count
from protocol.timeutil import ms_to_iso

PATH = "/console/users"
NAME_CHARS = "._-@"
DONE = {
    "added": N_("User {who} was added."),
    "role": N_("The role of {who} was changed. They need to sign in again."),
    "disabled": N_("User {who} was disabled and signed out."),
    "enabled": N_("User {who} can sign in again."),
}
"""Message ids of what the page reports after a change (translated in the template)."""


def _name_problem(name: str) -> str | None:
    if not name:
        return N_("Enter a user name.")
    if len(name) > 64 or not all(c.isalnum() or c in NAME_CHARS for c in name):
        return N_("A user name is 1 to 64 letters, digits or . _ - @ (no spaces).")
    return None


def _password_problem(password: str, again: str) -> str | None:
    if len(password) < 10:
        return N_("A password has at least 10 characters.")
    if len(password) > 1024:
        return N_("A password has at most 1,024 characters.")
    if password != again:
        return N_("The two passwords differ. Type the same password twice.")
    return None


async def _page(
    request: web.Request, extra: dict[str, Any] | None = None, *, status: int = 200
) -> web.Response:
    rt = request.app[RUNTIME]
    users = await rt.run(list_users, rt.engine)
    done = request.query.get("done", "")
    context: dict[str, Any] = {
        "users": users,
        "roles": ROLES,
        "added": {u.id: ms_to_iso(u.created)[:10] for u in users},
        "done": DONE.get(done, ""),
        "who": request.query.get("who", "")[:64],
        "errors": {},
        "values": {"name": "", "role": "viewer"},
        "problem": "",
    }
    return render(request, "console/users.html", {**context, **(extra or {})}, status=status)


@require_role("admin")
async def users_page(request: web.Request) -> web.Response:
    return await _page(request)


def _done(what: str, who: str) -> web.Response:
    return see_other(f"{PATH}?{urlencode({'done': what, 'who': who})}")


def _me(request: web.Request) -> StaffUser:
    user = request[STAFF_USER]
    assert user is not None  # require_role let the request through
    return user


@require_role("admin")
async def add_user(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    form = await form_of(request)
    name = str(form.get("name", "")).strip()
    role = str(form.get("role", ""))
    password = str(form.get("password", ""))
    errors: dict[str, str] = {}
    if problem := _name_problem(name):
        errors["name"] = problem
    if role not in ROLES:
        errors["role"] = N_("Choose a role.")
    if problem := _password_problem(password, str(form.get("password_again", ""))):
        errors["password"] = problem
    if not errors:
        try:
            await rt.run(
                create_user,
                rt.engine,
                name,
                password,
                role,
                now_ms=rt.clock(),
                actor=_me(request).name,
            )
        except NameTakenError:
            errors["name"] = N_("A user with this name exists already. Choose another name.")
    if errors:
        values = {"name": name[:64], "role": role if role in ROLES else "viewer"}
        return await _page(request, {"errors": errors, "values": values}, status=400)
    return _done("added", name)


async def _target(request: web.Request) -> StaffUser | web.Response:
    """The user the URL names, or the page with why it cannot be changed."""
    rt = request.app[RUNTIME]
    user_id = count(request.match_info["user_id"], 11)
    user = await rt.run(get_user, rt.engine, user_id) if user_id is not None else None
    if user is None:
        return await _page(request, {"problem": N_("There is no such user.")}, status=404)
    if user.id == _me(request).id:
        problem = N_("You cannot change your own account here. Ask another admin.")
        return await _page(request, {"problem": problem}, status=409)
    return user


async def _change(request: web.Request, fn: Any, *args: Any, done: str) -> web.Response:
    rt = request.app[RUNTIME]
    target = await _target(request)
    if isinstance(target, web.Response):
        return target
    try:
        await rt.run(fn, rt.engine, target.name, *args, actor=_me(request).name, now_ms=rt.clock())
    except LastAdminError:
        problem = N_("This would leave no enabled admin. Make another user admin first.")
        return await _page(request, {"problem": problem}, status=409)
    return _done(done, target.name)


@require_role("admin")
async def change_role(request: web.Request) -> web.Response:
    role = str((await form_of(request)).get("role", ""))
    if role not in ROLES:
        return await _page(request, {"problem": N_("Choose a role.")}, status=400)
    return await _change(request, set_role, role, done="role")


@require_role("admin")
async def disable_user(request: web.Request) -> web.Response:
    return await _change(request, set_disabled, True, done="disabled")


@require_role("admin")
async def enable_user(request: web.Request) -> web.Response:
    return await _change(request, set_disabled, False, done="enabled")


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get(PATH, users_page)
    r.add_post(PATH, add_user)
    r.add_post(PATH + "/{user_id}/role", change_role)
    r.add_post(PATH + "/{user_id}/disable", disable_user)
    r.add_post(PATH + "/{user_id}/enable", enable_user)
