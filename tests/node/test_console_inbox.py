"""The console's inbox on real nodes: the match notices a hub matching round sends, an
expression of interest sent from a match and answered in the owner's console with the
contact fields chosen (once), and the sync page's custody check and verification.

Each staff member is a real console session (cookie and CSRF token) on a node served
in-process; the hub and the members sync with one directly driven round each.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from typing import Any

import aiohttp
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session
from yarl import URL

from node.hub.eoi import new_eoi
from node.storage.models import AuditRow, EoiRow, InboxRow, RemoteListingRow
from node.ui.accounts import create_user
from node.ui.sessions import COOKIE, open_session
from tests.federation.network import Network, NodeFactory, start_network
from tests.nodes import RunningNode

PASSWORD = "correct horse battery"
_LINK = re.compile(r'href="/console/matches/(\d+)"')


class Staff:
    """One signed-in console user: a session opened for them, its cookie and CSRF token."""

    def __init__(self, node: RunningNode, name: str, role: str) -> None:
        rt = node.runtime
        user = create_user(rt.engine, name, PASSWORD, role, now_ms=rt.clock())
        token, session = open_session(rt.engine, user.id, now_ms=rt.clock())
        self.node, self.name, self.csrf = node, name, session.csrf
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.http.cookie_jar.update_cookies({COOKIE: token}, URL(node.url))

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.node.url + path, allow_redirects=False) as resp:
            return resp.status, await resp.text()

    async def post(
        self, path: str, data: list[tuple[str, str]] | dict[str, str]
    ) -> tuple[int, str, str]:
        form = list(data.items()) if isinstance(data, dict) else list(data)
        form.append(("csrf_token", self.csrf))
        async with self.http.post(self.node.url + path, data=form, allow_redirects=False) as r:
            return r.status, await r.text(), r.headers.get("Location", "")

    async def close(self) -> None:
        await self.http.close()


async def matched_network(node_factory: NodeFactory) -> Network:
    """Hub, th and vn with the sample listings; one matching round; notices pulled."""
    net = await start_network(node_factory, ["th", "vn"])
    await pull(net.hub, "th")
    await pull(net.hub, "vn")
    await pull_hub(net.nodes["th"])
    await pull_hub(net.nodes["vn"])
    return net


async def pull(node: RunningNode, peer: str, deadline_s: float = 30.0) -> None:
    """One pull of ``peer``'s feed. On PostgreSQL the pull's advisory lock is
    database-wide, so a pull by another test's node of the same id makes this one skip:
    poll until ours runs, within a deadline."""
    await node.sync.refresh_directory()
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    run = await node.sync.sync_peer(peer, force=True)
    while run is None and loop.time() < end:
        await asyncio.sleep(0.1)
        run = await node.sync.sync_peer(peer, force=True)
    assert run is not None and run.error is None, run


async def pull_hub(node: RunningNode) -> None:
    await pull(node, "cn")


def notices(node: RunningNode) -> list[tuple[int, dict[str, Any]]]:
    with Session(node.runtime.engine) as session:
        rows = session.scalars(
            select(InboxRow).where(InboxRow.type == "match_notice").order_by(InboxRow.id.desc())
        ).all()
        return [(r.id, json.loads(r.obj)) for r in rows]


def eoi_row(node: RunningNode, eoi_id: str) -> EoiRow | None:
    with Session(node.runtime.engine) as session:
        return session.get(EoiRow, eoi_id)


def eoi_rows(node: RunningNode) -> int:
    with Session(node.runtime.engine) as session:
        return len(session.scalars(select(EoiRow)).all())


def audit(node: RunningNode, action: str) -> list[AuditRow]:
    with Session(node.runtime.engine) as session:
        return list(session.scalars(select(AuditRow).where(AuditRow.action == action)))


async def express(staff: Staff, notice_id: int, message: str) -> str:
    """Interest from a match through the console; the new EoI's id."""
    status, _, location = await staff.post(
        f"/console/matches/{notice_id}/interest", {"message": message}
    )
    assert status == 303 and location.endswith("?done=sent"), (status, location)
    return location.removeprefix("/console/eois/").split("?")[0]


def notice_for_th(node: RunningNode) -> tuple[int, dict[str, Any]]:
    for notice_id, n in notices(node):
        cp = n["counterpart"]
        if cp["owner"] == "th" and cp.get("listing_id"):
            return notice_id, n
    raise AssertionError("vn received no notice naming a listing of th")


async def test_notices_appear_after_a_matching_round(node_factory: NodeFactory) -> None:
    net = await matched_network(node_factory)
    vn = net.nodes["vn"]
    received = notices(vn)
    assert received, "the hub's matching round sent vn no notice"
    viewer, editor = Staff(vn, "lan", "viewer"), Staff(vn, "minh", "editor")
    try:
        status, page = await viewer.get("/console/matches")
        assert status == 200
        newest_id, newest = received[0]
        listed = [int(i) for i in _LINK.findall(page)]
        assert listed[0] == newest_id and listed == sorted(listed, reverse=True)
        assert len(listed) == min(20, len(received))
        own = newest["own_listing"]["id"]
        assert f'href="/console/listings/{own}"' in page
        assert f"{newest['score']:.2f}" in page

        status, detail = await viewer.get(f"/console/matches/{newest_id}")
        assert status == 200
        for name in newest["explanation"]["components"]:
            assert f"<td>{html.escape(name)}</td>" in detail
        for term in newest["explanation"]["shared_terms"]:
            assert html.escape(term) in detail
        assert html.escape(newest["counterpart"]["descriptor"]) in detail
        th_notice, _ = notice_for_th(vn)
        status, detail = await viewer.get(f"/console/matches/{th_notice}")
        assert status == 200 and "Express interest" not in detail  # a viewer gets no form
        assert "Only editors can express interest." in detail
        status, detail = await editor.get(f"/console/matches/{th_notice}")
        assert status == 200 and "Express interest" in detail

        status, _ = await viewer.get("/console/matches?page=0")
        assert status == 400
        status, text = await viewer.get("/console/matches?page=abc")
        assert status == 400 and "The page number is not valid." in text
        status, _ = await viewer.get("/console/matches/999999")
        assert status == 404
        status, _, _ = await viewer.post(f"/console/matches/{newest_id}/interest", {"message": "x"})
        assert status == 403
        assert not audit(vn, "eoi.submit")

        # A match with another of vn's own listings offers no interest, and takes none.
        own = [i for i, n in received if n["counterpart"]["owner"] == "vn"]
        assert own, "the sample data matches some of vn's listings with each other"
        status, detail = await editor.get(f"/console/matches/{own[0]}")
        assert status == 200 and "Express interest" not in detail
        status, text, _ = await editor.post(f"/console/matches/{own[0]}/interest", {"message": "x"})
        assert status == 400 and "your own center&#39;s" in text
        assert not audit(vn, "eoi.submit") and eoi_rows(vn) == 0
    finally:
        await viewer.close()
        await editor.close()


async def test_interest_accepted_with_chosen_contact_reaches_the_requester(
    node_factory: NodeFactory,
) -> None:
    net = await matched_network(node_factory)
    th, vn = net.nodes["th"], net.nodes["vn"]
    asker, owner = Staff(vn, "minh", "editor"), Staff(th, "somchai", "editor")
    viewer = Staff(th, "nok", "viewer")
    try:
        notice_id, notice = notice_for_th(vn)
        listing = notice["counterpart"]["listing_id"]
        contact = th.runtime.listings.get(listing).record["contact"]
        assert {"person", "email", "phone"} <= set(contact)

        # A blank message is refused in place, and nothing is signed.
        status, text, _ = await asker.post(
            f"/console/matches/{notice_id}/interest", {"message": " "}
        )
        assert status == 400 and 'aria-invalid="true"' in text
        assert not audit(vn, "eoi.submit")

        eoi_id = await express(asker, notice_id, "We would like to license this for Vietnam.")
        row = eoi_row(vn, eoi_id)
        assert row is not None and (row.state, row.owner, row.listing_id) == (
            "forwarded",
            "th",
            listing,
        )
        [entry] = audit(vn, "eoi.submit")
        assert (entry.actor, entry.target) == ("minh", eoi_id)
        status, text = await asker.get("/console/eois")
        assert status == 200 and eoi_id in text and "sent, waiting for an answer" in text

        await pull_hub(th)
        status, text = await owner.get("/console/eois")
        assert status == 200 and f'href="/console/eois/{eoi_id}"' in text
        assert "waiting for your answer" in text
        status, page = await owner.get(f"/console/eois/{eoi_id}")
        assert status == 200
        assert html.escape(contact["email"]) in page and 'value="email"' in page

        # A viewer sees the interest but cannot answer it.
        status, page = await viewer.get(f"/console/eois/{eoi_id}")
        assert status == 200 and "Only editors can answer." in page
        status, _, _ = await viewer.post(f"/console/eois/{eoi_id}/answer", {"decision": "accepted"})
        assert status == 403
        assert eoi_row(th, eoi_id).state == "forwarded"  # type: ignore[union-attr]

        # Bad input: a field the service does not disclose.
        status, text, _ = await owner.post(
            f"/console/eois/{eoi_id}/answer", [("decision", "accepted"), ("share", "password")]
        )
        assert status == 400 and "Choose accept or decline." in text

        status, _, location = await owner.post(
            f"/console/eois/{eoi_id}/answer",
            [("decision", "accepted"), ("share", "email"), ("share", "phone")],
        )
        assert status == 303 and location == f"/console/eois/{eoi_id}?done=answered"
        assert eoi_row(th, eoi_id).state == "accepted"  # type: ignore[union-attr]
        [entry] = audit(th, "eoi.accept")
        assert (entry.actor, entry.target) == ("somchai", eoi_id)
        assert entry.detail == "shared: email, phone"

        # One answer only: the second is refused with a clear message, nothing changes.
        status, text, _ = await owner.post(
            f"/console/eois/{eoi_id}/answer", {"decision": "declined"}
        )
        assert status == 409
        assert "This was already answered; it cannot be answered again." in text
        assert eoi_row(th, eoi_id).state == "accepted"  # type: ignore[union-attr]
        assert not audit(th, "eoi.decline")
        status, page = await owner.get(f"/console/eois/{eoi_id}")
        assert 'name="decision"' not in page and html.escape(contact["email"]) in page

        # The requester has the answer after its next pull: the two fields chosen only.
        await pull_hub(vn)
        status, page = await asker.get(f"/console/eois/{eoi_id}")
        assert status == 200 and "accepted, contact received" in page
        row = eoi_row(vn, eoi_id)
        assert row is not None and row.state == "introduced"
        assert html.escape(contact["email"]) in page and html.escape(contact["phone"]) in page
        assert html.escape(contact["person"]) not in page
    finally:
        for staff in (asker, owner, viewer):
            await staff.close()


async def test_markup_in_a_message_is_shown_as_text(node_factory: NodeFactory) -> None:
    net = await matched_network(node_factory)
    th, vn = net.nodes["th"], net.nodes["vn"]
    asker, owner = Staff(vn, "minh", "editor"), Staff(th, "somchai", "editor")
    try:
        notice_id, _ = notice_for_th(vn)
        message = '<script>alert("x")</script><b onclick="x()">urgent</b>'
        eoi_id = await express(asker, notice_id, message)
        await pull_hub(th)
        status, page = await owner.get(f"/console/eois/{eoi_id}")
        assert status == 200
        assert "<script>alert" not in page and "<b onclick" not in page
        assert str(escape(message)) in page  # as Jinja escapes it
        status, _, _ = await owner.post(f"/console/eois/{eoi_id}/answer", {"decision": "declined"})
        assert status == 303
        assert eoi_row(th, eoi_id).state == "declined"  # type: ignore[union-attr]
        [entry] = audit(th, "eoi.decline")
        assert entry.detail == "shared: nothing"
        status, _ = await owner.get("/console/eois/th-eoi-nosuchthing")
        assert status == 404

        # 50 a page: 55 more (kept locally, never sent) make a second page of 6.
        for i in range(55):
            new_eoi(vn.runtime, "th", "th-any", f"interest {i}")
        status, page = await asker.get("/console/eois?sent_page=2")
        assert status == 200 and "Page 2 of 2" in page
        assert len(re.findall(r'href="/console/eois/vn-eoi-[^"?]+"', page)) == 6
        status, page = await asker.get("/console/eois")
        assert len(re.findall(r'href="/console/eois/vn-eoi-[^"?]+"', page)) == 50
        assert 'href="/console/eois?sent_page=2&amp;page=1"' in page
        status, page = await asker.get("/console/eois?sent_page=-1")
        assert status == 400 and "The page number is not valid." in page

        # The hub stops answering: the interest is kept as not sent, and says so.
        for site in list(net.hub.runner.sites):
            await site.stop()
        assert net.hub.runner.server is not None
        await net.hub.runner.server.shutdown(1.0)  # and the connections kept alive
        status, _, location = await asker.post(
            f"/console/matches/{notice_id}/interest", {"message": "Still interested."}
        )
        assert status == 303 and location.endswith("?done=unsent")
        unsent = location.removeprefix("/console/eois/").split("?")[0]
        assert eoi_row(vn, unsent).state == "submitted"  # type: ignore[union-attr]
        [entry] = [e for e in audit(vn, "eoi.submit") if e.target == unsent]
        assert "not sent" in entry.detail
        status, page = await asker.get(location)
        assert status == 200 and "the hub did not take it" in page and "Send again" in page
        status, page, _ = await asker.post(f"/console/eois/{unsent}/send", {})
        assert status == 502 and "The hub could not be reached." in page
        assert eoi_row(vn, unsent).state == "submitted"  # type: ignore[union-attr]
    finally:
        await asker.close()
        await owner.close()


async def test_sync_page_custody_check_and_verification(node_factory: NodeFactory) -> None:
    net = await matched_network(node_factory)
    th = net.nodes["th"]
    editor, viewer = Staff(th, "somchai", "editor"), Staff(th, "nok", "viewer")
    try:
        status, page = await viewer.get("/console/sync")
        assert status == 200 and "<td>Test center cn (CN)</td>" in page
        assert "up to date" in page
        assert "Check custody" not in page
        status, _, _ = await viewer.post("/console/sync/custody", {})
        assert status == 403

        status, page, _ = await editor.post("/console/sync/custody", {})
        assert status == 200, page
        assert "The hub&#39;s copy matches your records." in page

        # The hub loses its copy of one listing: the check names it as missing.
        with Session(net.hub.runtime.engine) as session, session.begin():
            lost = session.scalars(
                select(RemoteListingRow).where(RemoteListingRow.origin == "th").limit(1)
            ).one()
            lost_id = lost.listing_id
            session.delete(lost)
        status, page, _ = await editor.post("/console/sync/custody", {})
        assert status == 200
        assert "does not match your records" in page
        assert f'<a href="/console/listings/{lost_id}">{lost_id}</a>' in page

        status, page, _ = await editor.post("/console/sync/verify", {})
        assert status == 200 and re.search(r"All \d+ listings held verify", page)
    finally:
        await editor.close()
        await viewer.close()
    # The hub has no custody check (its page shows none); a form posted all the same is
    # told so, a 409, not a 502 as if a hub had failed to answer.
    admin = Staff(net.hub, "li", "admin")
    try:
        status, page = await admin.get("/console/sync")
        assert status == 200 and "Check custody" not in page
        status, page, _ = await admin.post("/console/sync/custody", {})
        assert status == 409 and "it holds no custody of its own data" in page
    finally:
        await admin.close()


async def test_a_visitors_interest_shows_who_asks_and_is_answered(
    node_factory: NodeFactory,
) -> None:
    from node.market.interest import VisitorForm, forward, take
    from tests.hub.market_net import market_network, public_keys

    net = await market_network(node_factory)
    hub, th = net.hub, net.nodes["th"]
    owner, lid = next(k for k in public_keys(net) if k[0] == "th")
    visitor = VisitorForm("Nguyen Thi <i>Lan</i>", "lan@sme.example", "Hanoi Agritech", "Price?")
    interest_id, state = take(hub.runtime, owner, lid, visitor, "0" * 64)
    assert state == "queued" and forward(hub.runtime, interest_id) == "forwarded"
    await pull_hub(th)

    editor = Staff(th, "somchai", "editor")
    try:
        status, page = await editor.get("/console/eois")
        assert status == 200 and "A visitor of the marketplace" in page
        assert "Nguyen Thi &lt;i&gt;Lan&lt;/i&gt;" in page
        status, page = await editor.get(f"/console/eois/{interest_id}")
        assert status == 200 and "A visitor of the hub&#39;s marketplace" in page
        for shown in ("lan@sme.example", "Hanoi Agritech", "Nguyen Thi &lt;i&gt;Lan&lt;/i&gt;"):
            assert shown in page
        status, _, location = await editor.post(
            f"/console/eois/{interest_id}/answer", [("decision", "accepted"), ("share", "email")]
        )
        assert status == 303 and location.endswith("?done=answered")
        hub_row = eoi_row(hub, interest_id)
        assert hub_row is not None and hub_row.state == "introduced"  # the hub keeps it
        assert eoi_row(th, interest_id).state == "accepted"  # type: ignore[union-attr]
        hub_staff = Staff(hub, "wei", "viewer")
        try:  # the hub's console does not list a visitor's interest as sent by the hub
            status, page = await hub_staff.get("/console/eois")
            assert status == 200 and interest_id not in page
        finally:
            await hub_staff.close()
    finally:
        await editor.close()


async def test_two_answers_at_once_one_is_taken(node_factory: NodeFactory) -> None:
    net = await matched_network(node_factory)
    th, vn = net.nodes["th"], net.nodes["vn"]
    asker = Staff(vn, "minh", "editor")
    first, second = Staff(th, "somchai", "editor"), Staff(th, "nok", "editor")
    try:
        notice_id, _ = notice_for_th(vn)
        eoi_id = await express(asker, notice_id, "Two colleagues answer this at once.")
        await pull_hub(th)
        answers = await asyncio.gather(
            first.post(f"/console/eois/{eoi_id}/answer", [("decision", "accepted")]),
            second.post(f"/console/eois/{eoi_id}/answer", [("decision", "declined")]),
        )
        statuses = sorted(a[0] for a in answers)
        assert statuses == [303, 409], [(a[0], a[1][-600:]) for a in answers]
        won = "accepted" if answers[0][0] == 303 else "declined"
        refused = answers[1] if won == "accepted" else answers[0]
        assert "This was already answered; it cannot be answered again." in refused[1]
        hub_row = eoi_row(net.hub, eoi_id)
        assert hub_row is not None and hub_row.state == won
        assert eoi_row(th, eoi_id).state == won  # type: ignore[union-attr]
        assert len(audit(th, "eoi.accept") + audit(th, "eoi.decline")) == 1
    finally:
        for staff in (asker, first, second):
            await staff.close()
