"""The queue of visitors' expressions of interest: empty, listed with the visitor's contact
(markup shown as text), filtered by state, spam dropped by an admin only, audited."""

from __future__ import annotations

import aiohttp
from sqlalchemy.orm import Session

from node.storage.models import VisitorInterestRow
from tests.federation.network import NodeFactory
from tests.hub.hubops_pages import audit_entries, interest, staff
from tests.nodes import RunningNode

PAGE = "/console/hub/interest"


def state_of(node: RunningNode, interest_id: str) -> str:
    with Session(node.runtime.engine) as session:
        row = session.get(VisitorInterestRow, interest_id)
        assert row is not None
        return row.state


async def test_interest_queue(node_factory: NodeFactory, http: aiohttp.ClientSession) -> None:
    hub = await node_factory("cn", is_hub=True)
    viewer = staff(http, hub, "lan", "viewer")
    admin = staff(http, hub, "mei", "admin")

    empty = await viewer.get(PAGE)
    assert empty.status == 200 and "No visitor has expressed interest yet." in empty.text

    now = hub.runtime.clock()
    interest(hub, "eoi-spam", "queued", now - 1000, name="<b>WIN</b>", message="<script>x</script>")
    interest(hub, "eoi-real", "queued", now - 2000, organization="Hanoi Agri Co.")
    # Kept before the form refused it: the link names the address and nothing more
    bcc = "x@y.zz?bcc=attacker%40evil.example&subject=hi"
    interest(hub, "eoi-link", "queued", now - 2500, email=bcc)
    interest(hub, "eoi-sent", "forwarded", now - 3000, owner="vn", listing_id="vn-req-2")

    page = await viewer.get(PAGE)
    assert page.status == 200
    assert page.text.index('id="interest-eoi-spam"') < page.text.index('id="interest-eoi-real"')
    assert "&lt;b&gt;WIN&lt;/b&gt;" in page.text and "<script>x" not in page.text
    assert "an@example.vn" in page.text and "Hanoi Agri Co." in page.text
    assert 'href="mailto:an%40example.vn"' in page.text
    assert 'href="mailto:x%40y.zz%3Fbcc%3Dattacker%2540evil.example%26subject%3Dhi"' in page.text
    assert 'href="/market/listing/vn/vn-req-2"' in page.text
    assert "Drop as spam" not in page.text  # a viewer reads only
    assert "queued (3)" in page.text and "forwarded (1)" in page.text

    forwarded = await viewer.get(PAGE + "?state=forwarded")
    assert "eoi-sent" in forwarded.text and "eoi-spam" not in forwarded.text
    assert (await viewer.get(PAGE + "?state=dropped")).text.count("None in this state.") == 1

    assert (await viewer.post(PAGE + "/eoi-spam/drop", {})).status == 403
    assert (await admin.post(PAGE + "/eoi-spam/drop", {}, csrf=False)).status == 403
    assert state_of(hub, "eoi-spam") == "queued"

    listed = await admin.get(PAGE)
    assert listed.text.count("Drop as spam") == 3  # the queued ones
    done = await admin.post(PAGE + "/eoi-spam/drop", {})
    assert (done.status, done.location) == (303, PAGE + "?done=dropped")
    assert state_of(hub, "eoi-spam") == "dropped"
    (entry,) = audit_entries(hub, "interest.drop")
    assert (entry.actor, entry.target) == ("mei", "eoi-spam")

    for gone in ("eoi-spam", "eoi-sent", "no-such-id"):
        refused = await admin.post(PAGE + f"/{gone}/drop", {})
        assert refused.status == 409 and "Only a queued" in refused.text, gone
    assert state_of(hub, "eoi-sent") == "forwarded"
    assert len(audit_entries(hub, "interest.drop")) == 1
