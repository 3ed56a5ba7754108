"""The console's sharing pages over real nodes: the grid, a cell edit into a draft, the
preview with its diff, applying (editors only, audited, refused when stale), the text
editor's errors in place, and the explain page."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.config import POLICY_FILE
from node.storage.models import AuditRow
from node.ui.accounts import create_user
from tests.federation.network import NodeFactory, load_records
from tests.node.sample import sample_records
from tests.nodes import RunningNode

PASSWORD = "correct horse battery"
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


class Staff:
    """A signed-in browser without a browser: a cookie jar and the session's CSRF token."""

    def __init__(self, node: RunningNode, http: aiohttp.ClientSession) -> None:
        self.node = node
        self.http = http
        self.csrf = ""

    async def get(self, path: str, **kw: Any) -> tuple[int, str]:
        async with self.http.get(self.node.url + path, allow_redirects=False, **kw) as resp:
            return resp.status, await resp.text()

    async def post(
        self, path: str, data: dict[str, Any] | list[tuple[str, str]]
    ) -> tuple[int, str, str]:
        fields = list(data.items()) if isinstance(data, dict) else list(data)
        if not any(k == "csrf_token" for k, _ in fields):
            fields.append(("csrf_token", self.csrf))
        async with self.http.post(self.node.url + path, data=fields, allow_redirects=False) as resp:
            return resp.status, await resp.text(), resp.headers.get("Location", "")


SignIn = Callable[[RunningNode, str, str], Awaitable[Staff]]


@pytest.fixture
async def sign_in() -> AsyncIterator[SignIn]:
    sessions: list[aiohttp.ClientSession] = []

    async def make(node: RunningNode, name: str, role: str) -> Staff:
        rt = node.runtime
        create_user(rt.engine, name, PASSWORD, role, now_ms=rt.clock())
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(http)
        async with http.get(node.url + "/console/login") as resp:
            page = await resp.text()
        form = {name_: html.unescape(value) for name_, value in HIDDEN.findall(page)}
        form.update({"name": name, "password": PASSWORD})
        async with http.post(node.url + "/console/login", data=form, allow_redirects=False) as resp:
            assert resp.status in (302, 303), await resp.text()
        staff = Staff(node, http)
        status, page = await staff.get("/console/sharing")
        assert status == 200, page
        staff.csrf = _hidden(page)["csrf_token"]
        return staff

    yield make
    for http in sessions:
        await http.close()


def _hidden(page: str) -> dict[str, str]:
    """The first value of each hidden input of the page."""
    out: dict[str, str] = {}
    for name, value in HIDDEN.findall(page):
        out.setdefault(name, html.unescape(value))
    return out


def _cell_form(page: str) -> list[tuple[str, str]]:
    """The cell editor's form as the browser would send it (checked boxes only)."""
    form = [(k, v) for k, v in _hidden(page).items()]
    for tag in re.findall(r"<input [^>]*>", page):
        if 'type="checkbox"' in tag or 'type="radio"' in tag:
            if " checked" in tag:
                name = re.search(r'name="([^"]+)"', tag)
                value = re.search(r'value="([^"]*)"', tag)
                assert name and value
                form.append((name.group(1), html.unescape(value.group(1))))
    return form


async def _member(node_factory: NodeFactory) -> RunningNode:
    node = await node_factory("vn", hub_id="cn")
    load_records(node, sample_records("vn"))
    return node


async def test_grid_shows_categories_by_audience(
    node_factory: NodeFactory, sign_in: SignIn
) -> None:
    node = await _member(node_factory)
    viewer = await sign_in(node, "lan", "viewer")
    status, page = await viewer.get("/console/sharing")
    assert status == 200
    for label in (
        "Technology offers",
        "Experts",
        "Agreements",
        "The hub",
        "Group mou",
        "Thailand (th)",
        "Everyone (public)",
    ):
        assert label in page, label
    assert 'value="tech_offer|cn"' in page and 'value="expert|*"' in page
    # the hub's offer rule of the default policy: 14 fields; th follows its group mou
    cell = page.split('value="tech_offer|cn"')[1].split("</td>")[0]
    assert "14 fields" in cell and "hub may relay" in cell
    assert "as mou" in page.split('value="tech_offer|th"')[1].split("</td>")[0]
    signed_out = aiohttp.ClientSession()
    async with signed_out.get(node.url + "/console/sharing", allow_redirects=False) as resp:
        assert resp.status == 302 and "/console/login" in resp.headers["Location"]
    await signed_out.close()


async def test_edit_preview_apply_audited(node_factory: NodeFactory, sign_in: SignIn) -> None:
    node = await _member(node_factory)
    rt = node.runtime
    markup = '# <script>alert("x")</script> & "quotes"\n'
    before = rt.policy.apply(markup + rt.policy.active().text, "init")
    editor = await sign_in(node, "lan", "editor")

    status, page = await editor.get("/console/sharing/cell?category=tech_offer&audience=cn")
    assert "<script>alert" not in page  # the text travels escaped in the hidden field
    assert status == 200 and 'id="field-summary"' in page
    form = [(k, v) for k, v in _cell_form(page) if (k, v) != ("field", "summary")]
    status, page, _ = await editor.post("/console/sharing/cell/save", form)
    assert status == 200, page
    assert "Draft, not applied yet." in page and "1 cell differs" in page
    draft = _hidden(page)
    assert "summary" not in draft["text"].split("audience: cn")[1].split("audience:")[0]
    assert draft["text"].startswith(markup + "# Sharing policy")  # comments are kept
    assert rt.policy.active().version == before.version  # nothing applied yet

    status, page, _ = await editor.post(
        "/console/sharing/preview", {"text": draft["text"], "base": draft["base"]}
    )
    assert status == 200, page
    assert "fields removed: summary" in page
    cn_row = page.split("China (cn)</th>")[1].split("</tr>")[0]
    assert "<code>summary</code> ×" in cn_row  # fields disappearing for the hub
    th_row = page.split("Thailand (th)</th>")[1].split("</tr>")[0]
    assert "–" in th_row and "summary" not in th_row  # th follows mou: unchanged
    assert "Apply these rules" in page

    apply_form = _hidden(page.split('action="/console/sharing/apply"')[1])
    status, _, location = await editor.post("/console/sharing/apply", apply_form)
    assert status == 303 and location == f"/console/sharing?applied={before.version + 1}"
    active = rt.policy.active()
    assert active.version == before.version + 1 and active.author == "lan"
    assert active.text == draft["text"]
    assert (node.data_dir / POLICY_FILE).read_text("utf-8") == draft["text"]
    with Session(rt.engine) as session:
        entries = session.scalars(select(AuditRow).where(AuditRow.action == "policy.apply")).all()
    assert [(e.actor, e.target) for e in entries] == [("lan", f"policy version {active.version}")]
    status, page = await editor.get(location)
    assert f"Policy version {active.version} is active" in page

    # the same preview applied again is stale: the active policy is no longer its base
    status, page, _ = await editor.post("/console/sharing/apply", apply_form)
    assert status == 409 and "was not applied" in page
    assert rt.policy.active().version == active.version


async def test_stale_preview_is_refused(node_factory: NodeFactory, sign_in: SignIn) -> None:
    node = await _member(node_factory)
    rt = node.runtime
    editor = await sign_in(node, "lan", "editor")
    base = rt.policy.active()
    draft = base.text.replace("fields: [title, summary, keywords]\n", "fields: [title]\n", 1)
    assert draft != base.text
    status, page, _ = await editor.post(
        "/console/sharing/preview", {"text": draft, "base": base.digest}
    )
    assert status == 200 and "Apply these rules" in page
    apply_form = _hidden(page.split('action="/console/sharing/apply"')[1])
    other = rt.policy.apply(base.text + "# a colleague's change\n", "somchai")
    status, page, _ = await editor.post("/console/sharing/apply", apply_form)
    assert status == 409
    assert "The active policy changed since this preview was made" in page
    assert rt.policy.active().version == other.version


async def test_viewer_reads_but_cannot_change(node_factory: NodeFactory, sign_in: SignIn) -> None:
    node = await _member(node_factory)
    rt = node.runtime
    before = rt.policy.active()
    viewer = await sign_in(node, "dara", "viewer")
    status, page = await viewer.get("/console/sharing/cell?category=tech_offer&audience=cn")
    assert status == 200 and "Save to the draft" not in page and "disabled" in page
    draft = before.text.replace("fields: [title, summary, keywords]\n", "fields: [title]\n", 1)
    status, page, _ = await viewer.post(
        "/console/sharing/preview", {"text": draft, "base": before.digest}
    )
    assert status == 200 and "Apply these rules" not in page
    status, page, _ = await viewer.post(
        "/console/sharing/apply", {"text": draft, "base": before.digest}
    )
    assert status == 403
    status, _, _ = await viewer.post(
        "/console/sharing/cell/save",
        {
            "text": before.text,
            "base": before.digest,
            "category": "expert",
            "audience": "th",
            "share": "no",
        },
    )
    assert status == 403
    assert rt.policy.active().version == before.version


async def test_a_relay_target_no_policy_holds_is_shown_in_place(
    node_factory: NodeFactory, sign_in: SignIn
) -> None:
    """A relay target that is no node id ("ZZ", crafted: the page offers only real ones)
    made a policy that did not read back, and the page answered 500."""
    node = await _member(node_factory)
    before = node.runtime.policy.active()
    editor = await sign_in(node, "lan", "editor")
    status, page = await editor.get("/console/sharing/cell?category=tech_offer&audience=cn")
    assert status == 200
    form = [(k, v) for k, v in _cell_form(page) if k != "relay_to"] + [("relay_to", "ZZ")]
    status, page, _ = await editor.post("/console/sharing/cell/save", form)
    assert status == 422, page[:500]
    assert "ZZ" in page and "Something went wrong" not in page
    assert node.runtime.policy.active().version == before.version


async def test_apply_without_csrf_is_refused(node_factory: NodeFactory, sign_in: SignIn) -> None:
    node = await _member(node_factory)
    before = node.runtime.policy.active()
    editor = await sign_in(node, "lan", "editor")
    draft = before.text + "# changed\n"
    status, page, _ = await editor.post(
        "/console/sharing/apply", {"text": draft, "base": before.digest, "csrf_token": "forged"}
    )
    assert status == 403 and "expired" in page
    assert node.runtime.policy.active().version == before.version


async def test_bad_rule_text_shows_its_error_in_place(
    node_factory: NodeFactory, sign_in: SignIn
) -> None:
    node = await _member(node_factory)
    before = node.runtime.policy.active()
    editor = await sign_in(node, "lan", "editor")
    bad = before.text.replace("contact", "x") + (
        "  - audience: MoU\n    category: tech_offer\n    visibility: [public]\n"
        "    fields: [title, contact.emial]\n"
    )
    status, page, _ = await editor.post("/console/sharing/text", {"text": bad, "base": ""})
    assert status == 422
    alert = page.split('role="alert" id="policy-errors"')[1].split("</div>")[0]
    line = bad.splitlines().index("  - audience: MoU") + 1
    assert f"Line {line}:" in alert
    assert "unknown group &#39;MoU&#39;" in alert and "contact.emial" in alert
    assert 'aria-invalid="true" aria-describedby="policy-errors"' in page
    assert html.escape("contact.emial") in page.split("<textarea")[1]  # the text is kept
    # the preview and apply refuse it the same way, and nothing changes
    status, page, _ = await editor.post("/console/sharing/preview", {"text": bad, "base": ""})
    assert status == 422 and 'id="policy-errors"' in page
    status, page, _ = await editor.post(
        "/console/sharing/apply", {"text": bad, "base": before.digest}
    )
    assert status == 422 and 'id="policy-errors"' in page
    status, page, _ = await editor.post(
        "/console/sharing/text", {"text": "rules:\n  - audience: *\n", "base": ""}
    )
    assert status == 422 and "not valid YAML" in page
    status, page, _ = await editor.post("/console/sharing/text", {"text": before.text, "base": ""})
    assert status == 200 and "The rules are valid." in page
    assert node.runtime.policy.active().version == before.version


async def test_cell_editor_names_the_problem(node_factory: NodeFactory, sign_in: SignIn) -> None:
    node = await _member(node_factory)
    before = node.runtime.policy.active()
    editor = await sign_in(node, "lan", "editor")
    status, page, _ = await editor.post(
        "/console/sharing/cell/save",
        {
            "text": before.text,
            "base": before.digest,
            "category": "expert",
            "audience": "th",
            "share": "yes",
            "visibility": "public",
        },
    )
    assert status == 422
    assert 'aria-describedby="err-fields"' in page
    assert 'id="err-fields">Choose at least one field to share.' in page


async def test_explain_names_the_rule_and_shows_the_view(
    node_factory: NodeFactory, sign_in: SignIn
) -> None:
    node = await _member(node_factory)
    listing = next(
        s.record
        for s in node.runtime.listings.iter_all(False)
        if s.record["category"] == "tech_request" and s.record["visibility"] == "network"
    )
    viewer = await sign_in(node, "dara", "viewer")
    status, page = await viewer.get(f"/console/sharing/explain/{listing['id']}?audience=cn")
    assert status == 200
    assert "Shared." in page and "Rule 2 decides, found by cn." in page
    assert "<code>title</code>" in page and "The exact signed object" in page
    status, page = await viewer.get(f"/console/sharing/explain/{listing['id']}?audience=ph")
    assert status == 200 and "Not shared." in page and "visibility" in page  # no_mou: public only
    status, page = await viewer.get("/console/sharing/explain/vn-nothing?audience=cn")
    assert status == 404 and "There is no listing with this id" in page
    status, page = await viewer.get(f"/console/sharing/explain/{listing['id']}?audience=Bad!")
    assert status == 400 and 'role="alert"' in page


async def test_a_cell_that_does_not_exist_is_a_page_saying_so(
    node_factory: NodeFactory, sign_in: SignIn
) -> None:
    node = await _member(node_factory)
    viewer = await sign_in(node, "dara", "viewer")
    status, page = await viewer.get("/console/sharing/cell?category=tech_offers&audience=cn")
    assert status == 400 and "There is no such cell in the grid." in page and "<h1>" in page
    status, page = await viewer.get("/console/sharing/cell?category=tech_offer&audience=zz")
    assert status == 404 and "There is no such cell in the grid." in page
    status, page, _ = await viewer.post(
        "/console/sharing/text", {"text": "#" * 200_001, "base": ""}
    )
    assert status == 413 and "The policy text is too long." in page


async def test_two_applies_from_one_preview_one_wins(node_factory: NodeFactory) -> None:
    import asyncio
    import threading

    from node.services.policy import StalePolicy

    node = await _member(node_factory)
    rt = node.runtime
    base = rt.policy.active()
    barrier = threading.Barrier(2)

    def apply(note: str) -> str:
        barrier.wait()
        try:
            rt.policy.apply(base.text + f"# {note}\n", note, expect_digest=base.digest)
        except StalePolicy:
            return "stale"
        return "applied"

    results = await asyncio.gather(
        asyncio.to_thread(apply, "lan"), asyncio.to_thread(apply, "somchai")
    )
    assert sorted(results) == ["applied", "stale"]
    assert rt.policy.active().version == base.version + 1
