"""The console's sign-in and sessions as an attacker would try them: forged and missing
CSRF tokens (forms and the login itself), session fixation, roles, login throttling,
idle and absolute expiry on the node's clock, disabled users, cookie attributes."""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from node.storage.models import AuditRow, LoginAttemptRow, LoginDeviceRow, WebSessionRow
from node.ui import throttle
from node.ui.accounts import ROLES, create_user, find_user, set_password
from node.ui.auth import required_role
from node.ui.login import DEVICE_COOKIE, safe_next
from node.ui.password_checks import PASSWORD_CHECKS
from node.ui.sessions import COOKIE, IDLE_MS, LIFETIME_MS
from tests.federation.network import NodeFactory
from tests.nodes import RunningNode
from tests.security.console_client import PASSWORD, Answer, Console, ManualClock

MINUTE = 60_000


def staff(node: RunningNode, name: str, role: str) -> None:
    create_user(node.runtime.engine, name, PASSWORD, role, now_ms=node.runtime.clock())


def session_rows(node: RunningNode) -> int:
    with Session(node.runtime.engine) as s:
        return int(s.scalar(select(func.count()).select_from(WebSessionRow)) or 0)


def audit_of(node: RunningNode, action: str) -> list[tuple[str, str, str]]:
    with Session(node.runtime.engine) as s:
        rows = s.scalars(select(AuditRow).where(AuditRow.action == action).order_by(AuditRow.id))
        return [(r.actor, r.target, r.detail) for r in rows]


def new_user(name: str, role: str = "editor") -> dict[str, str]:
    return {
        "name": name,
        "role": role,
        "password": "a long password",
        "password_again": "a long password",
    }


async def test_csrf_refused_on_a_real_form(node_factory: NodeFactory) -> None:
    node = await node_factory("th")
    staff(node, "admin1", "admin")
    staff(node, "admin2", "admin")
    async with Console(node) as me, Console(node) as other:
        assert (await me.login("admin1")).status == 303
        assert (await other.login("admin2")).status == 303
        mine, theirs = await me.csrf("/console/users"), await other.csrf("/console/users")
        assert mine != theirs
        for i, token in enumerate([None, "", "forged-token", mine[:-1] + "x", theirs]):
            form = new_user(f"mallory{i}")
            if token is not None:
                form["csrf_token"] = token
            answer = await me.post("/console/users", form)
            assert answer.status == 403, (token, answer.status)
            assert "This form has expired" in answer.text
            assert find_user(node.runtime.engine, f"mallory{i}") is None
        wrong_header = await me.request(
            "POST", "/console/users", data=new_user("mallory9"), headers={"X-CSRF-Token": theirs}
        )
        assert wrong_header.status == 403
        assert find_user(node.runtime.engine, "mallory9") is None
        # The same form with the session's own token goes through: the refusals were CSRF.
        ok = await me.post("/console/users", {**new_user("carol"), "csrf_token": mine})
        assert ok.status == 303 and ok.location.startswith("/console/users?done=added")
        assert find_user(node.runtime.engine, "carol") is not None
        assert audit_of(node, "user.create")[-1] == ("admin1", "carol", "editor")


async def test_login_form_needs_its_pre_session_token(node_factory: NodeFactory) -> None:
    node = await node_factory("th")
    staff(node, "somchai", "editor")
    async with Console(node) as client:
        plain = {"name": "somchai", "password": PASSWORD, "next": "/console"}
        refused = await client.post("/console/login", plain)  # no cookie, no field
        assert refused.status == 403 and client.cookie() is None
        await client.get("/console/login")  # the cookie, but a forged field
        refused = await client.post("/console/login", {**plain, "login_token": "x" * 43})
        assert refused.status == 403 and client.cookie() is None
        assert "This form has expired" in refused.text
        # A field copied from another browser's page does not match this one's cookie.
        async with Console(node) as other:
            page = await other.get("/console/login")
            token = re.search(r'name="login_token" value="([^"]+)"', page.text)
            assert token
        refused = await client.post("/console/login", {**plain, "login_token": token.group(1)})
        assert refused.status == 403 and client.cookie() is None
        assert (await client.login("somchai")).status == 303 and client.cookie()
        assert not audit_of(node, "login")  # sign-ins are not changes


async def test_session_fixation_and_logout(node_factory: NodeFactory) -> None:
    node = await node_factory("th")
    staff(node, "somchai", "editor")
    staff(node, "dara", "viewer")
    async with Console(node) as client:
        planted = "attacker-chosen-session-token"
        client.set_cookie(planted)
        assert (await client.get("/console")).status == 302  # a planted cookie is nobody
        answer = await client.login("somchai")
        assert answer.status == 303 and answer.location == "/console"
        first = client.cookie()
        assert first and first != planted
        assert (await client.get("/console")).status == 200
        # Signing in again (even as someone else) replaces the token and ends the old one.
        assert (await client.login("dara")).status == 303
        second = client.cookie()
        assert second and second != first
        async with Console(node) as thief:
            thief.set_cookie(first)
            assert (await thief.get("/console")).status == 302
        assert session_rows(node) == 1
        # Logging out needs the session's token, deletes the row, and the cookie is dead.
        assert (await client.post("/console/logout", {"csrf_token": "forged"})).status == 403
        assert session_rows(node) == 1
        token = await client.csrf()
        out = await client.post("/console/logout", {"csrf_token": token})
        assert out.status == 303 and out.location == "/console/login"
        assert session_rows(node) == 0
        async with Console(node) as thief:
            thief.set_cookie(second)
            assert (await thief.get("/console")).status == 302


async def test_roles(node_factory: NodeFactory) -> None:
    node = await node_factory("th")
    for name, role in (("ada", "admin"), ("eddie", "editor"), ("vera", "viewer")):
        staff(node, name, role)
    for name in ("eddie", "vera"):
        async with Console(node) as client:
            await client.login(name)
            token = await client.csrf()
            assert (await client.get("/console/users")).status == 403
            assert (await client.get("/console/audit")).status == 200  # everyone may read
            answer = await client.post(
                "/console/users", {**new_user("x" + name), "csrf_token": token}
            )
            assert answer.status == 403 and "Your role does not allow this" in answer.text
            assert find_user(node.runtime.engine, "x" + name) is None
            ada = find_user(node.runtime.engine, "ada")
            assert ada is not None
            answer = await client.post(f"/console/users/{ada.id}/disable", {"csrf_token": token})
            assert answer.status == 403
    ada = find_user(node.runtime.engine, "ada")
    assert ada is not None and not ada.disabled


async def test_every_console_route_is_guarded_by_role(node_factory: NodeFactory) -> None:
    """Every console page goes through ``require_role``, and every console write asking
    more than a user's role refuses them, whoever wrote the route. A write that guards
    itself (a streamed upload) is taken to ask for at least an editor."""
    node = await node_factory("th")
    staff(node, "vera", "viewer")
    staff(node, "eddie", "editor")
    posts: dict[str, str] = {}
    unguarded = []
    for route in node.app.router.routes():
        info = route.resource.canonical if route.resource is not None else ""
        if not info.startswith("/console") or info in ("/console/login", "/console/logout"):
            continue
        role = required_role(route.handler)
        if route.method == "POST":
            posts[re.sub(r"\{[^}]*\}", "1", info)] = role or "editor"
        elif role is None and route.method != "HEAD":
            unguarded.append(f"{route.method} {info}")
    assert not unguarded, f"not behind require_role: {unguarded}"
    assert {r for p, r in posts.items() if p.startswith("/console/users")} == {"admin"}
    for name, rank in (("vera", 0), ("eddie", 1)):
        async with Console(node) as client:
            await client.login(name)
            token = await client.csrf()
            for path, role in sorted(posts.items()):
                if ROLES.index(role) <= rank:
                    continue
                answer = await client.post(path, {"csrf_token": token})
                assert answer.status == 403, (name, path, answer.status, answer.text[:300])
                assert "Your role does not allow this" in answer.text


async def test_throttling_by_name(node_factory: NodeFactory) -> None:
    clock = ManualClock()
    node = await node_factory("th", clock=clock)
    staff(node, "somchai", "editor")
    async with Console(node) as client:
        for _ in range(4):
            assert (await client.login("somchai", "wrong password")).status == 401
        assert (await client.login("somchai")).status == 303  # a success clears them
    async with Console(node) as client:  # a browser that never signed in as somchai
        for _ in range(throttle.NAME_LIMIT):
            assert (await client.login("SomChai", "wrong password")).status == 401
    async with Console(node) as client:
        answer = await client.login("somchai")  # the right password, but the 6th try
        assert answer.status == 429 and client.cookie() is None
        assert "Too many attempts" in answer.text and "try again in 15 minutes" in answer.text
        assert 0 < int(answer.headers["Retry-After"]) <= 15 * 60
        # Throttled tries are not recorded, so they do not push the lockout further out.
        clock.advance(10 * MINUTE)
        assert (await client.login("somchai")).status == 429
        clock.advance(5 * MINUTE + 1)
        assert (await client.login("somchai")).status == 303
    with Session(node.runtime.engine) as s:
        assert not s.scalars(select(LoginAttemptRow)).all()  # pruned and cleared


async def test_a_stranger_cannot_keep_a_user_out_of_a_browser_they_signed_in_with(
    node_factory: NodeFactory,
) -> None:
    """Five wrong passwords for a name pause it for browsers without the name's device
    token; the user's own browser, which signed in before, is counted on its own."""
    node = await node_factory("th")
    staff(node, "somchai", "editor")
    staff(node, "ada", "editor")
    async with Console(node) as own, Console(node) as stranger, Console(node) as other:
        assert (await own.login("somchai")).status == 303
        assert own.cookie(DEVICE_COOKIE)
        for _ in range(throttle.NAME_LIMIT):
            assert (await stranger.login("somchai", "wrong password")).status == 401
        assert (await stranger.login("somchai")).status == 429
        assert (await other.login("somchai")).status == 429  # a new browser: paused
        assert (await own.login("somchai")).status == 303  # the user's own: not paused
        # A device token of another name, or one made up, is no token.
        assert (await other.login("ada")).status == 303
        assert (await other.login("somchai")).status == 429
        stranger.set_cookie(secrets.token_urlsafe(32), DEVICE_COOKIE)
        assert (await stranger.login("somchai")).status == 429
        stranger.set_cookie("\u00e9" * 43, DEVICE_COOKIE)
        assert (await stranger.login("somchai")).status == 429
        # The device's own wrong guesses have the same limit, and pause only it.
        for _ in range(throttle.NAME_LIMIT):
            assert (await own.login("somchai", "wrong password")).status == 401
        assert (await own.login("somchai")).status == 429
    with Session(node.runtime.engine) as s:
        devices = s.scalars(select(LoginDeviceRow.name)).all()
    assert sorted(devices) == ["ada", "somchai"]  # one for each right password's browser


async def test_a_new_password_forgets_the_browsers(node_factory: NodeFactory) -> None:
    node = await node_factory("th")
    staff(node, "somchai", "editor")
    async with Console(node) as own, Console(node) as stranger:
        assert (await own.login("somchai")).status == 303
        for _ in range(throttle.NAME_LIMIT):
            assert (await stranger.login("somchai", "wrong password")).status == 401
        set_password(
            node.runtime.engine, "somchai", PASSWORD, actor="test", now_ms=node.runtime.clock()
        )
        assert (await own.login("somchai")).status == 429
    with Session(node.runtime.engine) as s:
        assert not s.scalars(select(LoginDeviceRow)).all()


async def test_throttling_by_address(node_factory: NodeFactory) -> None:
    node = await node_factory("th")
    staff(node, "somchai", "editor")
    async with Console(node) as client:
        for i in range(throttle.ADDRESS_LIMIT):
            assert (await client.login(f"guess{i}", "wrong password")).status == 401
        answer = await client.login("somchai")
        assert answer.status == 429 and client.cookie() is None


async def test_behind_a_trusted_proxy_each_visitor_is_throttled_by_its_own_address(
    node_factory: NodeFactory,
) -> None:
    """Behind the documented reverse proxy every request comes from 127.0.0.1: counted
    by that address, 20 wrong guesses from anyone paused sign-in for everyone. The
    address the proxy saw (X-Forwarded-For from a trusted proxy) is counted instead."""
    node = await node_factory("th", trusted_proxies=["127.0.0.1", "::1"])  # the proxy set-up
    staff(node, "somchai", "editor")
    attacker = {"X-Forwarded-For": "198.51.100.7"}
    async with Console(node, attacker) as client:
        for i in range(throttle.ADDRESS_LIMIT):
            assert (await client.login(f"guess{i}", "wrong password")).status == 401
        assert (await client.login("somchai")).status == 429  # that address is paused
    # What the client itself wrote to the left of the proxy's entry proves nothing.
    spoofing = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}
    async with Console(node, spoofing) as client:
        assert (await client.login("somchai")).status == 429
    async with Console(node, {"X-Forwarded-For": "203.0.113.9"}) as client:
        assert (await client.login("somchai")).status == 303  # another visitor: not paused
    with Session(node.runtime.engine) as s:
        addresses = set(s.scalars(select(LoginAttemptRow.address)).all())
    assert addresses == {"198.51.100.7"}, addresses


async def test_a_visitor_cannot_escape_the_address_limit_through_its_other_addresses(
    node_factory: NodeFactory,
) -> None:
    """Counted one address at a time, anyone holding an IPv6 /64 (2^64 addresses) had no
    limit, and an IPv4 address written as IPv6 was counted apart from itself."""
    node = await node_factory("th", trusted_proxies=["127.0.0.1", "::1"])
    staff(node, "somchai", "editor")
    for i in range(throttle.ADDRESS_LIMIT):
        async with Console(node, {"X-Forwarded-For": f"2001:db8::{i + 1:x}"}) as client:
            assert (await client.login(f"guess{i}", "wrong password")).status == 401
    for elsewhere in ("2001:db8::ffff:1", "2001:db8::abcd"):  # the same /64
        async with Console(node, {"X-Forwarded-For": elsewhere}) as client:
            assert (await client.login("somchai")).status == 429, elsewhere
    async with Console(node, {"X-Forwarded-For": "2001:db8:0:1::1"}) as client:
        assert (await client.login("somchai")).status == 303  # another /64: not paused
    async with Console(node, {"X-Forwarded-For": "198.51.100.7"}) as client:
        for i in range(throttle.ADDRESS_LIMIT):
            assert (await client.login(f"guess{i}", "wrong password")).status == 401
    async with Console(node, {"X-Forwarded-For": "::ffff:198.51.100.7"}) as client:
        assert (await client.login("somchai")).status == 429


async def test_a_forwarded_for_header_from_an_untrusted_peer_is_ignored(
    node_factory: NodeFactory,
) -> None:
    node = await node_factory("th")  # no proxy named: the header is anyone's to write
    staff(node, "somchai", "editor")
    for i in range(throttle.ADDRESS_LIMIT):
        async with Console(node, {"X-Forwarded-For": f"198.51.100.{i}"}) as client:
            assert (await client.login(f"guess{i}", "wrong password")).status == 401
    async with Console(node, {"X-Forwarded-For": "203.0.113.9"}) as client:
        assert (await client.login("somchai")).status == 429  # all counted as 127.0.0.1


async def test_idle_and_absolute_expiry(node_factory: NodeFactory) -> None:
    clock = ManualClock()
    node = await node_factory("th", clock=clock)
    staff(node, "somchai", "editor")
    async with Console(node) as client:
        await client.login("somchai")
        clock.advance(IDLE_MS - MINUTE)
        assert (await client.get("/console")).status == 200  # in use: kept alive
        clock.advance(IDLE_MS - MINUTE)
        assert (await client.get("/console")).status == 200
        clock.advance(IDLE_MS + 1)
        answer = await client.get("/console/audit")
        assert answer.status == 302 and answer.location.startswith("/console/login?next=")
        assert session_rows(node) == 0
        await client.login("somchai")
        signed_in = clock.now
        while (await client.get("/console")).status == 200:
            assert clock.now - signed_in <= LIFETIME_MS, "the session outlived its lifetime"
            clock.advance(20 * MINUTE)
        assert clock.now - signed_in > LIFETIME_MS - 20 * MINUTE  # it lived until then


async def test_disabled_user_and_role_change_end_sessions(node_factory: NodeFactory) -> None:
    node = await node_factory("th")
    staff(node, "ada", "admin")
    staff(node, "somchai", "editor")
    somchai = find_user(node.runtime.engine, "somchai")
    assert somchai is not None
    async with Console(node) as admin, Console(node) as victim:
        await admin.login("ada")
        await victim.login("somchai")
        token = await admin.csrf("/console/users")
        answer = await admin.post(
            f"/console/users/{somchai.id}/role", {"role": "viewer", "csrf_token": token}
        )
        assert answer.status == 303
        assert (await victim.get("/console")).status == 302  # signed out by the change
        assert (await victim.login("somchai")).status == 303
        answer = await admin.post(f"/console/users/{somchai.id}/disable", {"csrf_token": token})
        assert answer.status == 303
        assert (await victim.get("/console")).status == 302
        assert (await victim.login("somchai")).status == 401  # the right password
        assert audit_of(node, "user.role") == [("ada", "somchai", "editor -> viewer")]
        assert audit_of(node, "user.disable") == [("ada", "somchai", "")]
        # An admin cannot change themself here (and so not lock everyone out).
        me = find_user(node.runtime.engine, "ada")
        assert me is not None
        answer = await admin.post(f"/console/users/{me.id}/disable", {"csrf_token": token})
        assert answer.status == 409 and "your own account" in answer.text
        answer = await admin.post(f"/console/users/{somchai.id}/enable", {"csrf_token": token})
        assert answer.status == 303
        assert (await victim.login("somchai")).status == 303


async def test_add_user_errors_in_place(node_factory: NodeFactory) -> None:
    node = await node_factory("th")
    staff(node, "ada", "admin")
    async with Console(node) as admin:
        await admin.login("ada")
        token = await admin.csrf("/console/users")
        cases = [
            ({"name": "bad name"}, "new-name-error", "letters, digits"),
            ({"name": "ada"}, "new-name-error", "exists already"),
            ({"name": "ADA"}, "new-name-error", "exists already"),
            ({"role": "root"}, "new-role-error", "Choose a role"),
            ({"password": "short", "password_again": "short"}, "new-password-error", "at least 10"),
            ({"password_again": "another long one"}, "new-password-error", "differ"),
        ]
        for change, where, words in cases:
            answer = await admin.post(
                "/console/users", {**new_user("newbie"), **change, "csrf_token": token}
            )
            assert answer.status == 400, change
            assert f'id="{where}"' in answer.text and words in answer.text, change
        assert find_user(node.runtime.engine, "newbie") is None


async def test_cookie_attributes(node_factory: NodeFactory) -> None:
    node = await node_factory("th")
    staff(node, "somchai", "editor")
    async with Console(node) as client:
        answer = await client.login("somchai")
        cookie = next(c for c in answer.cookies if c.startswith(COOKIE + "="))
        attrs = {a.strip().lower() for a in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= attrs and "secure" not in attrs
    # Behind a TLS proxy the node's base_url is https: cookies are Secure though the
    # request itself came over plain HTTP.
    node.runtime.config.base_url = "https://th.example.org"
    async with Console(node) as client:
        page = await client.get("/console/login")
        assert any("secure" in c.lower() for c in page.cookies if c.startswith("cattc_login="))
        found = re.search(r'name="login_token" value="([^"]+)"', page.text)
        assert found  # the jar keeps Secure cookies off plain HTTP: send it by hand
        form = {"name": "somchai", "password": PASSWORD, "login_token": found.group(1)}
        headers = {"Cookie": f"cattc_login={found.group(1)}"}
        answer = await client.request("POST", "/console/login", data=form, headers=headers)
        assert answer.status == 303
        cookie = next(c for c in answer.cookies if c.startswith(COOKIE + "="))
        assert "secure" in {a.strip().lower() for a in cookie.split(";")[1:]}


async def test_parallel_guesses_gain_nothing(node_factory: NodeFactory) -> None:
    node = await node_factory("th")
    staff(node, "somchai", "editor")
    clients = [Console(node) for _ in range(12)]
    try:
        tokens = []
        for client in clients:
            page = await client.get("/console/login")
            found = re.search(r'name="login_token" value="([^"]+)"', page.text)
            assert found
            tokens.append(found.group(1))
        answers = await asyncio.gather(
            *(
                client.post(
                    "/console/login",
                    {"name": "somchai", "password": f"guess {i}", "login_token": token},
                )
                for i, (client, token) in enumerate(zip(clients, tokens, strict=True))
            )
        )
    finally:
        for client in clients:
            await client.close()
    statuses = sorted(a.status for a in answers)
    # 503: more sign-ins at once than there are places to check passwords (below)
    assert statuses.count(401) <= throttle.NAME_LIMIT, statuses
    assert set(statuses) <= {401, 429, 503}, statuses
    assert statuses.count(429) + statuses.count(503) >= len(clients) - throttle.NAME_LIMIT


async def test_sign_ins_at_once_wait_for_each_other_not_for_the_database(
    node_factory: NodeFactory,
) -> None:
    """A password check takes most of a second of CPU (argon2). Twenty sign-ins sent at
    once held every database thread: a signed-in page waited 9 s. They are checked on a
    thread of their own, a few at a time, and the rest are answered 503 at once, without
    being counted as attempts. Here the checking thread is kept busy while the page is
    asked for, so nothing depends on how fast the machine is."""
    node = await node_factory("th")
    staff(node, "somchai", "admin")
    held = threading.Event()
    clients = [Console(node) for _ in range(20)]
    try:
        async with Console(node) as admin:
            assert (await admin.login("somchai")).status == 303
            pages = [await client.get("/console/login") for client in clients]
            tokens = [re.search(r'name="login_token" value="([^"]+)"', p.text) for p in pages]
            node.app[PASSWORD_CHECKS]._executor.submit(held.wait)  # its one thread, busy
            guesses = [
                asyncio.ensure_future(
                    client.post(
                        "/console/login",
                        {"name": f"guess{i}", "password": "wrong", "login_token": t.group(1)},
                    )
                )
                for i, (client, t) in enumerate(zip(clients, tokens, strict=True))
                if t is not None
            ]
            busy: list[Answer] = []
            deadline = time.monotonic() + 30
            while len(busy) < 15 and time.monotonic() < deadline:
                done, _ = await asyncio.wait(guesses, timeout=0.05)
                busy = [g.result() for g in done]
            assert [a.status for a in busy] == [503] * 15
            assert all("Try again in a few seconds" in a.text for a in busy)
            # Five wait for the checking thread; the database is free for everyone else.
            assert (await admin.get("/console/audit")).status == 200
            assert not all(g.done() for g in guesses)
            held.set()
            answers = await asyncio.gather(*guesses)
            assert sorted(a.status for a in answers) == [401] * 5 + [503] * 15
    finally:
        held.set()
        for client in clients:
            await client.close()
    with Session(node.runtime.engine) as s:  # only the five checked count as attempts
        assert s.scalar(select(func.count()).select_from(LoginAttemptRow)) == 5


async def test_sign_ins_the_throttle_refuses_take_no_password_check(
    node_factory: NodeFactory,
) -> None:
    """A slot for a password check was taken before the throttle was asked: an address's
    refused guesses held every slot while their rows were written, and staff elsewhere
    got 503. Refused sign-ins are answered 429 without a slot, even while the checking
    thread is busy; the slots are for passwords that will be checked."""
    node = await node_factory("th")
    staff(node, "somchai", "admin")
    now = node.runtime.clock()
    with Session(node.runtime.engine) as s, s.begin():
        s.add_all(
            LoginAttemptRow(name="somchai", address="10.9.9.9", at=now, device="")
            for _ in range(throttle.NAME_LIMIT)
        )  # the name has had its failures: a browser without a device token is refused
    held = threading.Event()
    clients = [Console(node) for _ in range(12)]
    try:
        pages = [await client.get("/console/login") for client in clients]
        tokens = [re.search(r'name="login_token" value="([^"]+)"', p.text) for p in pages]
        node.app[PASSWORD_CHECKS]._executor.submit(held.wait)  # its one thread, busy
        answers = await asyncio.wait_for(
            asyncio.gather(
                *(
                    client.post(
                        "/console/login",
                        {"name": "somchai", "password": "wrong", "login_token": t.group(1)},
                    )
                    for client, t in zip(clients, tokens, strict=True)
                    if t is not None
                )
            ),
            30,
        )
        assert [a.status for a in answers] == [429] * 12
    finally:
        held.set()
        for client in clients:
            await client.close()


def test_where_a_login_may_lead() -> None:
    for target in ("/console", "/console/audit?actor=ada&page=2", "/market/listing/th/x"):
        assert safe_next(target) == target
    for bad in (
        None,
        "",
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        " //evil.example",
        "javascript:alert(1)",
    ):
        assert safe_next(bad) == "/console", bad
