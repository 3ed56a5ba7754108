"""The console's listings on real nodes: the table and its filters, the forms with each
field's error in place, withdrawal, import with preview and progress, export (round
trip), and what a viewer may not do. Each change is in the audit log by the user's name."""

from __future__ import annotations

import json
import re
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session
from yarl import URL

from node.cli.main import cli
from node.storage.models import AuditRow
from node.ui.accounts import create_user
from node.ui.sessions import COOKIE, open_session
from protocol.timeutil import date_to_ms, ms_to_date
from tests.federation.network import NodeFactory, load_records
from tests.node.sample import sample_records
from tests.nodes import RunningNode, start_node

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Staff:
    """A signed-in console user: a cookie session made directly, its CSRF token."""

    node: RunningNode
    http: aiohttp.ClientSession
    csrf: str

    async def get(self, path: str) -> tuple[int, str, dict[str, str]]:
        async with self.http.get(self.node.url + path, allow_redirects=False) as resp:
            return resp.status, await resp.text(), dict(resp.headers)

    async def post(self, path: str, data: Any) -> tuple[int, str, dict[str, str]]:
        if isinstance(data, dict):
            data = {"csrf_token": self.csrf, **data}
        async with self.http.post(self.node.url + path, data=data, allow_redirects=False) as r:
            return r.status, await r.text(), dict(r.headers)


@pytest.fixture
async def staff() -> AsyncIterator[Any]:
    clients: list[aiohttp.ClientSession] = []

    async def make(node: RunningNode, name: str, role: str) -> Staff:
        rt = node.runtime
        user = create_user(rt.engine, name, PASSWORD, role, now_ms=rt.clock())
        token, session = open_session(rt.engine, user.id, now_ms=rt.clock())
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        http.cookie_jar.update_cookies({COOKIE: token}, URL(node.url))
        clients.append(http)
        return Staff(node, http, session.csrf)

    yield make
    for http in clients:
        await http.close()


def audit_entries(node: RunningNode) -> list[tuple[str, str, str]]:
    """The audit log's entries about listings: (actor, action, target)."""
    with Session(node.runtime.engine) as session:
        rows = session.scalars(
            select(AuditRow).where(AuditRow.action.like("listing.%")).order_by(AuditRow.id)
        )
        return [(r.actor, r.action, r.target) for r in rows]


def field_error(html: str, html_id: str) -> str:
    """The error shown next to input ``html_id``, checking the input points at it."""
    tag = re.search(rf'<(?:input|textarea|select|fieldset)[^>]*id="{html_id}"[^>]*>', html)
    assert tag, f"no input {html_id}"
    assert f"{html_id}-error" in tag.group(0), f"{html_id} is not described by its error"
    found = re.search(rf'id="{html_id}-error">([^<]*)<', html)
    assert found, f"no error shown for {html_id}"
    return unescape(found.group(1))


OFFER: dict[str, str] = {
    "category": "tech_offer",
    "title.en": "Solar <b>dryer</b> for cassava chips",
    "title.th": "เครื่องอบแห้งพลังงานแสงอาทิตย์",
    "summary": "A tunnel dryer heated by flat-plate collectors.",
    "keywords": "drying\nsolar",
    "ipc": "F26B",
    "country": "TH",
    "visibility": "network",
    "expires": "2027-06-30",
    "sector": "agrifood",
    "trl": "7",
    "stage": "demonstrated",
    "ipr_status": "applied",
    "organization.name": "Khon Kaen Drying Lab",
    "organization.type": "university",
    "rights.ip_owner": "Khon Kaen University",
    "rights.attribution": "Dr. Somchai",
    "rights.name_logo_consent": "on",
}


def offer_form(**changes: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for key, value in {**OFFER, **changes}.items():
        form.add_field(key, value)
    form.add_field("partnership", "licensing")
    form.add_field("partnership", "joint_venture")
    return form


async def test_create_with_bad_fields_shows_each_error_in_place_then_fix(
    node_factory: NodeFactory, staff: Any
) -> None:
    node = await node_factory("th")
    editor = await staff(node, "malee", "editor")

    status, html, _ = await editor.get("/console/listings/new?category=tech_offer")
    assert status == 200 and 'id="f-trl"' in html and 'id="f-organization-name"' in html

    form = offer_form(trl="12", ipc="F26B\nZ99", expires="30/06/2027", csrf_token=editor.csrf)
    status, html, _ = await editor.post("/console/listings/new", form)
    assert status == 422
    assert field_error(html, "f-trl") == "At most 9."
    assert field_error(html, "f-ipc") == "Z99 is not an IPC code (e.g. A01G or A01G 9/14)."
    assert field_error(html, "f-expires") == "Enter a date as YYYY-MM-DD."
    assert 'role="alert"' in html and 'href="#f-trl"' in html  # the summary links each field
    # The values are kept, and shown as text (escaped), not markup.
    assert "Solar &lt;b&gt;dryer&lt;/b&gt; for cassava chips" in html
    assert "<b>dryer</b>" not in html
    assert 'value="licensing" checked' in html
    assert node.runtime.listings.query()[0] == []  # nothing stored
    # NUL in a field (a 500 on PostgreSQL, whose text cannot hold it) is refused.
    form = offer_form(summary="Dries \x00 chips", csrf_token=editor.csrf)
    status, html, _ = await editor.post("/console/listings/new", form)
    assert status == 400
    assert node.runtime.listings.query()[0] == []

    form = offer_form(csrf_token=editor.csrf)
    status, _, headers = await editor.post("/console/listings/new", form)
    assert status == 303, headers
    assert headers["Location"] == "/console/listings/th-off-0001?done=created"
    stored = node.runtime.listings.get("th-off-0001").record
    assert stored["trl"] == 7 and stored["partnership"] == ["licensing", "joint_venture"]
    assert stored["title"] == {"en": OFFER["title.en"], "th": OFFER["title.th"]}
    assert stored["rights"]["name_logo_consent"] is True
    assert ("malee", "listing.create", "th-off-0001") in audit_entries(node)

    status, html, _ = await editor.get("/console/listings")
    assert status == 200 and "th-off-0001" in html and "Solar &lt;b&gt;dryer" in html
    status, html, _ = await editor.get("/console/listings?lang=th")
    assert OFFER["title.th"] in html  # the title in the viewer's language


async def test_edit_keeps_what_the_form_does_not_show_and_withdraw_asks_first(
    node_factory: NodeFactory, staff: Any
) -> None:
    node = await node_factory("th")
    record = sample_records("th")[0]
    record["title"]["ms"] = "Tajuk dalam bahasa Melayu"
    load_records(node, [record])
    lid = record["id"]
    editor = await staff(node, "malee", "editor")

    status, html, _ = await editor.get(f"/console/listings/{lid}/edit")
    assert status == 200
    values = _form_values(html)
    assert values["title.en"] == [record["title"]["en"]]
    values["summary"] = [""]  # required: refused in place
    status, html, _ = await editor.post(f"/console/listings/{lid}/edit", _post(values))
    assert status == 422
    assert field_error(html, "f-summary") == "This field is required."
    assert node.runtime.listings.get(lid).record["version"] == record["version"]

    values = _form_values(html)  # the page as shown again, its values kept
    values["summary"] = ["A shorter summary."]
    status, _, headers = await editor.post(f"/console/listings/{lid}/edit", _post(values))
    assert status == 303 and headers["Location"].endswith("?done=saved")
    after = node.runtime.listings.get(lid).record
    assert after["summary"] == "A shorter summary."
    assert after["version"] == record["version"] + 1
    assert after["title"]["ms"] == "Tajuk dalam bahasa Melayu"  # not in the form, kept
    assert after["id"] == lid and after["created"] != 0

    # Someone else saves in between: this form's values are refused, not saved over theirs.
    status, html, _ = await editor.get(f"/console/listings/{lid}/edit")
    values = _form_values(html)
    values["summary"] = ["Mine."]
    node.runtime.listings.update(lid, {**after, "summary": "Theirs."})
    status, html, _ = await editor.post(f"/console/listings/{lid}/edit", _post(values))
    assert status == 422 and "Someone changed this listing" in unescape(html)
    assert node.runtime.listings.get(lid).record["summary"] == "Theirs."

    status, html, _ = await editor.get(f"/console/listings/{lid}/withdraw")
    assert status == 200 and "Yes, withdraw it" in html
    assert not node.runtime.listings.get(lid).withdrawn  # asking changed nothing
    status, _, headers = await editor.post(f"/console/listings/{lid}/withdraw", {})
    assert status == 303
    assert node.runtime.listings.get(lid).withdrawn
    actions = [a for a in audit_entries(node) if a[2] == lid]
    assert actions == [("malee", "listing.update", lid), ("malee", "listing.withdraw", lid)]

    _, html, _ = await editor.get("/console/listings")
    assert lid not in html
    _, html, _ = await editor.get("/console/listings?status=withdrawn")
    assert lid in html
    status, _, _ = await editor.get(f"/console/listings/{lid}/edit")
    assert status == 303  # a withdrawn listing cannot be edited


def _form_values(html: str) -> dict[str, list[str]]:
    """The listing form's values as a browser would post them (inputs, selects,
    textareas, checked boxes)."""
    form = html[html.index('class="listing-form"') :]
    out: dict[str, list[str]] = {}
    for tag in re.findall(r"<input [^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if not name:
            continue
        if 'type="checkbox"' in tag and " checked" not in tag:
            continue
        out.setdefault(name.group(1), []).append(unescape(value.group(1)) if value else "on")
    for name, text in re.findall(r'<textarea [^>]*name="([^"]+)"[^>]*>([^<]*)</textarea>', form):
        out[name] = [unescape(text)]
    for name, body in re.findall(r'<select [^>]*name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', body)
        out[name] = [chosen.group(1) if chosen else ""]
    return out


def _post(values: dict[str, list[str]]) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for key, items in values.items():
        for item in items:
            data.add_field(key, item)
    return data


async def test_table_filters_search_and_pages(node_factory: NodeFactory, staff: Any) -> None:
    node = await node_factory("th")
    records = [
        {**r, "owner": "th"}
        for r in sample_records()
        if "th" not in (r.get("share_with") or []) and r["category"] != "agreement"
    ]
    records[0]["title"]["en"] = "100% rubber_latex gloves"
    load_records(node, records)
    viewer = await staff(node, "nok", "viewer")

    seen: list[str] = []
    path = "/console/listings"
    for _ in range(20):
        status, html, _ = await viewer.get(path)
        assert status == 200
        seen += re.findall(r'<td><a href="/console/listings/([^"]+)">', html)
        nxt = re.search(r'href="(/console/listings\?[^"]*after=[^"]+)" rel="next"', html)
        if not nxt:
            break
        path = unescape(nxt.group(1))
    assert sorted(seen) == sorted(r["id"] for r in records) and len(seen) == len(set(seen))
    assert len(records) > 50  # more than one page

    _, html, _ = await viewer.get("/console/listings?category=expert")
    ids = re.findall(r'<td><a href="/console/listings/([^"]+)">', html)
    assert ids and all(r["category"] == "expert" for r in records if r["id"] in ids)

    _, html, _ = await viewer.get("/console/listings?q=100%25+rubber_latex")
    assert re.findall(r'<td><a href="/console/listings/([^"]+)">', html) == [records[0]["id"]]
    _, html, _ = await viewer.get("/console/listings?q=%25")  # a literal %, escaped in LIKE
    assert re.findall(r'<td><a href="/console/listings/([^"]+)">', html) == [records[0]["id"]]
    _, html, _ = await viewer.get("/console/listings?q=_")
    assert re.findall(r'<td><a href="/console/listings/([^"]+)">', html) == [records[0]["id"]]


async def test_viewer_sees_no_edit_buttons_and_is_refused(
    node_factory: NodeFactory, staff: Any
) -> None:
    node = await node_factory("th")
    record = sample_records("th")[0]
    load_records(node, [record])
    viewer = await staff(node, "nok", "viewer")
    lid = record["id"]

    status, html, _ = await viewer.get(f"/console/listings/{lid}")
    assert status == 200 and record["summary"][:30] in unescape(html)
    assert f"/console/listings/{lid}/shared" in html
    assert f"/console/sharing/explain/{lid}" in html
    assert "/edit" not in html and "/withdraw" not in html
    _, html, _ = await viewer.get("/console/listings")
    assert "/console/listings/new" not in html and "/console/listings/import" not in html

    status, html, _ = await viewer.get("/console/listings/no-such-listing")
    assert status == 404 and "There is no such listing on this node." in html

    for path in (f"/console/listings/{lid}/edit", "/console/listings/new?category=expert"):
        status, _, _ = await viewer.get(path)
        assert status == 403
    status, _, _ = await viewer.post(f"/console/listings/{lid}/withdraw", {})
    assert status == 403
    status, _, _ = await viewer.post("/console/listings/new", {"category": "expert"})
    assert status == 403
    upload = aiohttp.FormData()
    upload.add_field("csrf_token", viewer.csrf)
    upload.add_field("file", b"{}\n", filename="x.jsonl")
    status, _, _ = await viewer.post("/console/listings/import", upload)
    assert status == 403
    status, _, _ = await viewer.get("/console/listings/export")
    assert status == 403
    assert not node.runtime.listings.get(lid).withdrawn
    assert audit_entries(node) == []


def jsonl(records: list[Any]) -> bytes:
    return "".join(
        (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records
    ).encode()


def upload_form(
    csrf: str | None, data: bytes, filename: str, encoding: str = ""
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    if csrf is not None:
        form.add_field("csrf_token", csrf)
    form.add_field("encoding", encoding)
    form.add_field("file", data, filename=filename, content_type="application/octet-stream")
    return form


async def wait_done(staff: Staff, job_path: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        async with staff.http.get(staff.node.url + job_path + "/status") as resp:
            assert resp.status == 200
            status: dict[str, Any] = await resp.json()
        if status["done"]:
            return status
        await staff.node.runtime.run(lambda: None)  # yield to the import's thread
    raise AssertionError("the import did not finish within 30 s")


async def test_import_names_bad_lines_in_the_preview_and_stores_the_good(
    node_factory: NodeFactory, staff: Any
) -> None:
    node = await node_factory("th")
    editor = await staff(node, "malee", "editor")
    good = sample_records("th")[:3]
    bad_trl = {**sample_records("th")[3], "trl": 12}
    foreign = sample_records("vn")[0]
    lines = [good[0], "{not json", bad_trl, good[1], foreign, good[1], good[2]]
    body = jsonl(lines)

    status, _, _ = await editor.post("/console/listings/import", upload_form(None, body, "a.jsonl"))
    assert status == 403  # no CSRF token: refused before the file is read
    status, html, _ = await editor.post(
        "/console/listings/import", upload_form(editor.csrf, body, "a.txt")
    )
    assert status == 422 and "Choose a .csv or .jsonl file." in html

    status, _, headers = await editor.post(
        "/console/listings/import", upload_form(editor.csrf, body, "catalogue.jsonl")
    )
    assert status == 303, headers
    job = headers["Location"]
    status, html, _ = await editor.get(job)
    assert status == 200 and "Import preview: catalogue.jsonl" in html
    problems = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", html)
    assert [(int(n), i) for n, i, _ in problems] == [
        (2, "-"),
        (3, bad_trl["id"]),
        (5, foreign["id"]),
        (6, good[1]["id"]),
    ]
    reasons = [unescape(r) for _, _, r in problems]
    assert "not valid JSON" in reasons[0] and "trl" in reasons[1]
    assert "owned by 'vn'" in reasons[2] and reasons[3] == "duplicate of line 4"
    for r in good:
        assert r["id"] in html  # the first records, as the table shows them
    assert node.runtime.listings.query()[0] == []  # the preview stores nothing

    status, _, headers = await editor.post(job, {})
    assert status == 303 and headers["Location"] == job
    final = await wait_done(editor, job)
    assert final == {
        "state": "done",
        "processed": 7,
        "total": 7,
        "percent": 100,
        "good": 3,
        "bad": 4,
        "done": True,
    }
    stored = {s.id for s in node.runtime.listings.query()[0]}
    assert stored == {r["id"] for r in good}
    status, html, _ = await editor.get(job)
    assert "The import is finished." in html and "duplicate of line 4" in html
    assert ("malee", "listing.import", "listings") in audit_entries(node)
    assert not list((node.data_dir / "console-imports").iterdir())  # the upload is gone

    # Another editor cannot see this job; starting it again does nothing.
    other = await staff(node, "daeng", "editor")
    status, html, _ = await other.get(job)
    assert status == 404 and "There is no such import" in html


async def test_import_csv_and_body_limit(node_factory: NodeFactory, staff: Any) -> None:
    node = await node_factory("th", max_body_bytes=4096)
    editor = await staff(node, "malee", "editor")
    header = (
        "id,category,title.en,summary,country,visibility,expires,created,updated,version,"
        "owner,name,rights.ip_owner,rights.attribution,rights.name_logo_consent\n"
    )
    row = (
        "th-exp-{n},expert,Expert {n},Soil science,TH,network,2027-01-01,2025-01-01,"
        "2025-01-01,{v},th,Dr {n},KKU,declined,true\n"
    )
    csv = header + row.format(n="0001", v=1) + row.format(n="0002", v="x")
    status, _, headers = await editor.post(
        "/console/listings/import", upload_form(editor.csrf, csv.encode(), "experts.csv")
    )
    assert status == 303
    status, html, _ = await editor.get(headers["Location"])
    assert "column &#39;version&#39;: &#39;x&#39; is not an integer" in html
    await editor.post(headers["Location"], {})
    assert (await wait_done(editor, headers["Location"]))["good"] == 1
    assert node.runtime.listings.get("th-exp-0001").record["name"] == "Dr 0001"

    # A body declaring its length is refused by the node's body limit before any handler;
    # one sent in chunks is counted as it streams to disk, and refused there.
    status, text, _ = await editor.post(
        "/console/listings/import", upload_form(editor.csrf, b"x" * 8000, "big.jsonl")
    )
    assert status == 413 and "larger than this node accepts (4 KB)" in text
    async with editor.http.post(
        node.url + "/console/listings/import",
        data=upload_form(editor.csrf, b"x" * 8000, "big.jsonl"),
        chunked=True,
    ) as resp:
        assert resp.status == 413 and "larger than 4,096 bytes" in await resp.text()
    assert not list((node.data_dir / "console-imports").iterdir())


async def test_upload_form_is_read_as_written_or_refused(
    node_factory: NodeFactory, staff: Any
) -> None:
    node = await node_factory("th")
    editor = await staff(node, "malee", "editor")
    good = jsonl(sample_records("th")[:1])

    form = upload_form(editor.csrf, good, "a.jsonl")
    form.add_field("extra", "x")
    status, html, _ = await editor.post("/console/listings/import", form)
    assert status == 422 and "The form was not understood" in html
    form = upload_form(editor.csrf, good, "a.jsonl")
    form.add_field("file", good, filename="b.jsonl")
    status, html, _ = await editor.post("/console/listings/import", form)
    assert status == 422 and "Upload one file at a time." in html
    status, _, _ = await editor.post(
        "/console/listings/import", upload_form(editor.csrf + "x" * 300, good, "a.jsonl")
    )
    assert status == 403
    status, html, _ = await editor.post(
        "/console/listings/import", upload_form(editor.csrf, b"", "a.jsonl")
    )
    assert status == 422 and "Choose a file to import." in html
    status, html, _ = await editor.post(
        "/console/listings/import", upload_form(editor.csrf, b"\xff\xfe\x00oops", "a.jsonl")
    )
    assert status == 422 and "The file cannot be read" in html
    # Only the form's encodings: Python's zlib codec inflated 815 KB to gigabytes (then
    # failed with 500, leaving the upload), rot13 and undefined failed with 500.
    bomb = zlib.compress(b"\n" * (64 << 20))
    for encoding in ("zlib", "rot13", "undefined", "hex", "utf-7"):
        status, html, _ = await editor.post(
            "/console/listings/import", upload_form(editor.csrf, bomb, "a.jsonl", encoding)
        )
        assert status == 422 and "The form was not understood" in html, encoding
    # A part's header aiohttp refuses (a NUL in the file's name) is a 400, not a 500.
    parts = [
        f'Content-Disposition: form-data; name="csrf_token"\r\n\r\n{editor.csrf}'.encode(),
        b'Content-Disposition: form-data; name="encoding"\r\n\r\n',
        b'Content-Disposition: form-data; name="file"; filename="a\x00b.jsonl"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + good,
    ]
    body = b"".join(b"--xyz\r\n" + part + b"\r\n" for part in parts) + b"--xyz--\r\n"
    async with editor.http.post(
        node.url + "/console/listings/import",
        data=body,
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 400, await resp.text()
    assert not list((node.data_dir / "console-imports").iterdir())
    assert node.runtime.listings.query()[0] == []


async def test_export_then_import_into_a_fresh_node_gives_the_same_listings(
    node_factory: NodeFactory, staff: Any, tmp_path: Path, database_url: Any
) -> None:
    node = await node_factory("th")
    records = sample_records("th")
    load_records(node, records)
    node.runtime.listings.withdraw(records[0]["id"])
    editor = await staff(node, "malee", "editor")

    status, body, headers = await editor.get("/console/listings/export")
    assert status == 200 and headers["Content-Type"].startswith("application/x-ndjson")
    assert "attachment" in headers["Content-Disposition"]
    exported = [json.loads(line) for line in body.splitlines()]
    live = {s.id: s.record for s in node.runtime.listings.iter_all(include_withdrawn=False)}
    assert {r["id"]: r for r in exported} == live and records[0]["id"] not in live
    assert ("malee", "listing.export", "listings") in audit_entries(node)

    result = CliRunner().invoke(cli, ["listings", str(node.data_dir), "export"])
    assert result.exit_code == 0, result.output
    assert result.output == body  # the CLI writes the same lines
    out = tmp_path / "th.jsonl"
    result = CliRunner().invoke(cli, ["listings", str(node.data_dir), "export", "--out", str(out)])
    assert result.exit_code == 0 and out.read_text(encoding="utf-8") == body

    fresh = await start_node(tmp_path / "fresh", "th", database_url("th_fresh"))
    try:
        other = await staff(fresh, "malee", "editor")
        status, _, headers = await other.post(
            "/console/listings/import", upload_form(other.csrf, body.encode(), "th.jsonl")
        )
        assert status == 303
        await other.post(headers["Location"], {})
        assert (await wait_done(other, headers["Location"]))["bad"] == 0
        again = {s.id: s.record for s in fresh.runtime.listings.iter_all()}
        assert again == live
    finally:
        await fresh.stop()


@pytest.mark.parametrize(
    "category",
    ["tech_offer", "tech_request", "expert", "organization", "event", "agreement"],
)
async def test_each_category_form_shows_a_listing_and_saves_it_back_unchanged(
    node_factory: NodeFactory, staff: Any, category: str
) -> None:
    record = next(
        r for r in sample_records() if r["category"] == category and r["visibility"] != "bilateral"
    )
    # An expiry at noon (as the admin API may set it): the form shows the day, and saving
    # the same day keeps the time.
    record = {**record, "owner": "th", "expires": date_to_ms(record["expires"]) + 43_200_000}
    node = await node_factory("th")
    load_records(node, [record])
    before = node.runtime.listings.get(record["id"]).record
    editor = await staff(node, "malee", "editor")

    status, html, _ = await editor.get(f"/console/listings/{record['id']}/edit")
    assert status == 200
    values = _form_values(html)
    status, html, headers = await editor.post(
        f"/console/listings/{record['id']}/edit", _post(values)
    )
    assert status == 303, re.findall(r'class="field-error"[^>]*>([^<]*)<', html) or html[:2000]
    assert node.runtime.listings.get(record["id"]).record == before  # nothing lost or changed

    # The same values make a new listing of that kind, with an id of its own.
    values["category"] = [category]
    del values["seen_version"]
    status, _, headers = await editor.post("/console/listings/new", _post(values))
    assert status == 303
    new_id = headers["Location"].split("/")[-1].split("?")[0]
    created = node.runtime.listings.get(new_id).record
    ignored = {"id", "version", "created", "updated", "title", "expires"}
    shown = {k for k in before if k not in ignored}
    assert created["expires"] == date_to_ms(ms_to_date(before["expires"]))  # the day

    def same(rec: dict[str, Any]) -> dict[str, Any]:  # checked boxes come in the form's order
        return {k: sorted(rec[k]) if k in {"partnership", "sectors"} else rec[k] for k in shown}

    assert same(created) == same(before)
