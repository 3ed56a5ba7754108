"""The console's listings in a real browser: an editor creates a listing with a bad
field, sees the error next to it, fixes it and finds it in the table; imports a file with
bad lines, reads the preview naming them, runs it and sees the progress end in the
report. A viewer sees no edit buttons. Every page passes axe-core."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.async_api import Page

from tests.browser.helpers import add_staff, describe, serious_axe_findings, shot, sign_in
from tests.federation.network import NodeFactory
from tests.node.sample import sample_records


async def _check(page: Page, tmp_path: Path, name: str) -> None:
    findings = await serious_axe_findings(page)
    assert not findings, f"{name}: {describe(findings)}"
    await shot(page, tmp_path, name)


async def test_create_with_a_bad_field_fix_it_and_import_a_file(
    node_factory: NodeFactory, page: Page, tmp_path: Path
) -> None:
    node = await node_factory("th")
    add_staff(node, "malee", "editor")
    await sign_in(page, node, "malee")

    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Listings").click()
    await page.wait_for_url("**/console/listings")
    await _check(page, tmp_path, "listings-empty")

    await page.get_by_role("link", name="New listing").click()
    await page.get_by_label("What kind of listing?").select_option("tech_offer")
    await page.get_by_role("button", name="Continue").click()
    await page.get_by_label("Title in English").wait_for()
    await _check(page, tmp_path, "form-new")

    await page.get_by_label("Title in English").fill("Solar tunnel dryer for cassava chips")
    await page.get_by_label("Summary").fill("A tunnel dryer heated by flat-plate collectors.")
    await page.get_by_label("IPC codes").fill("F26B\nZ99")
    await page.get_by_label("Visibility").select_option("network")
    await page.get_by_label("Expires").fill("2027-06-30")
    await page.get_by_label("Sector").select_option("agrifood")
    await page.get_by_label("Technology readiness level (1-9)").fill("12")
    await page.get_by_label("Stage").select_option("demonstrated")
    await page.get_by_label("IP status").select_option("applied")
    await page.get_by_role("group", name="Partnership wanted").get_by_label("Licensing").check()
    await page.get_by_label("Organization name").fill("Khon Kaen Drying Lab")
    await page.get_by_label("Organization type").select_option("university")
    await page.get_by_label("IP owners").fill("Khon Kaen University")
    await page.get_by_label("Attribution").fill("declined")
    await page.get_by_role("button", name="Create the listing").click()

    summary = page.get_by_role("alert")
    await summary.wait_for()
    assert "The listing was not saved" in await summary.inner_text()
    trl = page.get_by_label("Technology readiness level (1-9)")
    assert await trl.get_attribute("aria-invalid") == "true"
    described = await trl.get_attribute("aria-describedby") or ""
    assert "f-trl-error" in described
    assert await page.locator("#f-trl-error").inner_text() == "At most 9."
    assert "Z99 is not an IPC code" in await page.locator("#f-ipc-error").inner_text()
    # What was typed is still there.
    assert await page.get_by_label("Organization name").input_value() == "Khon Kaen Drying Lab"
    await _check(page, tmp_path, "form-errors")

    await trl.fill("7")
    await page.get_by_label("IPC codes").fill("F26B")
    await page.get_by_role("button", name="Create the listing").click()
    await page.wait_for_url("**/console/listings/th-off-0001?done=created")
    assert "The listing was created." in await page.get_by_role("status").inner_text()
    await _check(page, tmp_path, "listing-created")

    await page.get_by_role("link", name="All listings").click()
    row = page.get_by_role("row", name="th-off-0001")
    assert "Solar tunnel dryer for cassava chips" in await row.inner_text()
    await _check(page, tmp_path, "listings-one")

    # Import: a file with good records and bad lines.
    good = sample_records("th")[:4]
    bad = {**sample_records("th")[4], "trl": 12}
    lines = [json.dumps(good[0]), "{not json", json.dumps(bad)] + [json.dumps(r) for r in good[1:]]
    upload = tmp_path / "catalogue.jsonl"
    upload.write_text("\n".join(lines) + "\n", encoding="utf-8")

    await page.get_by_role("link", name="Import a file").click()
    await page.get_by_label("File (.csv or .jsonl)").set_input_files(str(upload))
    await _check(page, tmp_path, "import-upload")
    await page.get_by_role("button", name="Upload and preview").click()
    await page.get_by_role("heading", name="Import preview: catalogue.jsonl").wait_for()
    problems = page.get_by_role("table", name="Lines that will not be imported")
    text = await problems.inner_text()
    assert "not valid JSON" in text and bad["id"] in text
    assert (await problems.locator("tbody tr").count()) == 2
    first_cells = await problems.locator("tbody tr td:first-child").all_inner_texts()
    assert first_cells == ["2", "3"]
    await _check(page, tmp_path, "import-preview")

    await page.get_by_role("button", name="Import 4 good records").click()
    await page.get_by_text("The import is finished.").wait_for()
    figures = await page.locator("#import-progress").inner_text()
    assert "6 / 6" in figures
    assert await page.locator('[data-figure="good"]').inner_text() == "4"
    assert await page.locator('[data-figure="bad"]').inner_text() == "2"
    await _check(page, tmp_path, "import-report")
    stored = {s.id for s in node.runtime.listings.query()[0]}
    assert stored == {"th-off-0001", *(r["id"] for r in good)}

    await page.get_by_role("link", name="See the listings").click()
    for r in good:
        await page.get_by_role("link", name=r["id"], exact=True).wait_for()


async def test_a_viewer_sees_no_edit_buttons(
    node_factory: NodeFactory, page: Page, tmp_path: Path
) -> None:
    node = await node_factory("th")
    record = sample_records("th")[0]
    node.runtime.listings.import_records([(1, record)])
    add_staff(node, "nok", "viewer")
    await sign_in(page, node, "nok")

    await page.goto(node.url + "/console/listings")
    assert await page.get_by_role("link", name="New listing").count() == 0
    assert await page.get_by_role("link", name="Import a file").count() == 0
    await page.get_by_role("link", name=record["id"]).click()
    await page.get_by_role("heading", level=1).wait_for()
    assert await page.get_by_role("link", name="Edit").count() == 0
    assert await page.get_by_role("link", name="Withdraw").count() == 0
    await _check(page, tmp_path, "viewer-listing")

    # A POST made by hand with the viewer's own session and token is refused.
    token = await page.locator('input[name="csrf_token"]').first.get_attribute("value")
    response = await page.request.post(
        node.url + f"/console/listings/{record['id']}/withdraw",
        form={"csrf_token": token or ""},
        max_redirects=0,
    )
    assert response.status == 403
    assert not node.runtime.listings.get(record["id"]).withdrawn


async def test_a_file_over_the_limit_is_refused_before_it_is_sent(
    node_factory: NodeFactory, page: Page, tmp_path: Path
) -> None:
    node = await node_factory("th", max_body_bytes=2048)
    add_staff(node, "malee", "editor")
    await sign_in(page, node, "malee")
    big = tmp_path / "big.jsonl"
    big.write_text(json.dumps(sample_records("th")[0]) * 2 + "\n", encoding="utf-8")
    assert big.stat().st_size > 2048
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    await page.goto(node.url + "/console/listings/import")
    assert "Files up to 2,048 bytes." in await page.locator("main").inner_text()
    await page.get_by_label("File (.csv or .jsonl)").set_input_files(str(big))
    await page.get_by_role("button", name="Upload and preview").click()
    error = page.locator("#upload-size-error")
    await error.wait_for(state="visible")
    assert await error.inner_text() == "This file is too large to upload here."
    assert await page.get_by_label("File (.csv or .jsonl)").get_attribute("aria-invalid") == "true"
    await _check(page, tmp_path, "import-too-large")
    assert posts == [] and page.url.endswith("/console/listings/import")


async def test_the_progress_page_updates_itself_until_the_report(
    node_factory: NodeFactory, page: Page, tmp_path: Path
) -> None:
    node = await node_factory("th")
    add_staff(node, "malee", "editor")
    await sign_in(page, node, "malee")
    base = sample_records("th")
    records = [{**base[i % len(base)], "id": f"th-bulk-{i:05d}"} for i in range(2500)]
    upload = tmp_path / "bulk.jsonl"
    upload.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    polled: list[str] = []
    page.on("request", lambda r: polled.append(r.url) if r.url.endswith("/status") else None)

    await page.goto(node.url + "/console/listings/import")
    await page.get_by_label("File (.csv or .jsonl)").set_input_files(str(upload))
    await page.get_by_role("button", name="Upload and preview").click()
    await page.get_by_role("button", name="Import 2500 good records").click()
    # 2,500 records take seconds: the page opens while the import runs, and its script
    # polls the status and reloads for the report, with no click.
    await page.get_by_text("The import is finished.").wait_for(timeout=60_000)
    assert polled, "the progress page did not poll the import's status"
    assert await page.locator('[data-figure="good"]').inner_text() == "2500"
    await _check(page, tmp_path, "import-big-report")
    assert len(node.runtime.listings.query(limit=3000)[0]) == 2500
