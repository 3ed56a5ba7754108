"""The hub operator in a real browser: signs in on the hub, adds a member with its key
fetched and confirmed, and after a sync round reads the sync page; every page passes
axe-core (no serious findings) and is kept as a screenshot."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page

from node.services.member_identity import key_fingerprint
from tests.browser.helpers import add_staff, describe, serious_axe_findings, shot, sign_in
from tests.federation.network import NodeFactory, hub_key, load_records
from tests.hub.hubops_pages import interest
from tests.node.sample import sample_records


async def check(page: Page, tmp_path: Path, name: str) -> None:
    findings = await serious_axe_findings(page)
    assert not findings, f"{name}: {describe(findings)}"
    await shot(page, tmp_path, name)


async def test_operator_adds_a_member_and_watches_sync(
    node_factory: NodeFactory, page: Page, tmp_path: Path
) -> None:
    hub = await node_factory("cn", is_hub=True)
    th = await node_factory("th", hub_url=hub.url, hub_key=hub_key(hub), hub_id="cn")
    load_records(th, sample_records("th"))
    add_staff(hub, "mei", "admin")
    directory = hub.runtime.directory
    start = directory.version()

    await sign_in(page, hub, "mei")
    await page.get_by_role("link", name="Hub operator").click()
    await page.wait_for_url("**/console/hub/directory")
    await check(page, tmp_path, "hub-directory-empty")

    # A mistake first: the error is shown beside its field.
    await page.get_by_label("Node id").fill("th")
    await page.get_by_label("Name", exact=True).fill("Bangkok TTC")
    await page.get_by_label("Country code").fill("TH")
    await page.get_by_label("Base URL").fill("th.example")
    await page.get_by_label("Groups").fill("mou")
    await page.get_by_role("button", name="Fetch key").click()
    await page.wait_for_load_state()
    assert await page.get_by_label("Base URL").get_attribute("aria-invalid") == "true"
    assert await page.evaluate("document.activeElement.id") == "m-base_url"  # start there
    assert "must start with http://" in await page.locator("#m-base_url-error").inner_text()
    await check(page, tmp_path, "hub-directory-error")

    await page.get_by_label("Base URL").fill(th.url)
    await page.get_by_role("button", name="Fetch key").click()
    await page.get_by_role("heading", name="Confirm the new member").wait_for()
    fingerprint = key_fingerprint(th.runtime.keys.verify_keys()["ed25519:1"].b64)
    assert fingerprint in await page.locator("table.fetched-keys").inner_text()
    assert directory.get("th") is None
    await check(page, tmp_path, "hub-confirm-key")

    await page.get_by_role("button", name="Confirm and add the member").click()
    await page.wait_for_url("**/console/hub/directory?done=added")
    assert "The member was added." in await page.get_by_role("status").inner_text()
    row = page.locator("#member-th")
    assert fingerprint in await row.inner_text()
    assert directory.version() == start + 1
    assert await page.locator("#directory-version").inner_text() == str(start + 1)
    await check(page, tmp_path, "hub-directory-added")

    runs = await hub.sync.sync_all()  # one sync round: the hub pulls th's feed
    assert [r.peer for r in runs] == ["th"] and runs[0].applied > 0

    await page.get_by_role("link", name="Members' sync").click()
    await page.wait_for_url("**/console/hub/sync")
    assert "ok" in await page.locator("#sync-th").inner_text()
    assert await page.locator("section.history svg").count() == 2
    await page.get_by_text("The numbers as a table").click()
    assert str(runs[0].applied) in await page.locator("table.history-table").inner_text()
    await check(page, tmp_path, "hub-sync")

    await page.get_by_role("link", name="Visitors' interest").click()
    await page.wait_for_url("**/console/hub/interest")
    assert "No visitor has expressed interest yet." in await page.inner_text("main")
    await check(page, tmp_path, "hub-interest-empty")

    # A visitor's message, as the marketplace keeps it; the operator drops it as spam
    # (the page's script asks first).
    interest(hub, "cn-eoi-v1", "queued", hub.runtime.clock(), message="<b>Cheap pills</b>")
    await page.reload()
    assert "<b>Cheap pills</b>" in await page.locator("#interest-cn-eoi-v1").inner_text()
    await check(page, tmp_path, "hub-interest-queue")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.locator("#interest-cn-eoi-v1").get_by_role("button").click()
    await page.wait_for_url("**/console/hub/interest?done=dropped")
    assert "dropped" in await page.locator("#interest-cn-eoi-v1").inner_text()

    # Suspending asks first, then the table says so.
    await page.get_by_role("link", name="Directory").click()
    await page.get_by_role("link", name="Suspend th").click()
    await page.get_by_role("heading", name="Suspend member th").wait_for()
    await check(page, tmp_path, "hub-suspend-confirm")
    await page.get_by_role("button", name="Yes, suspend it").click()
    await page.wait_for_url("**/console/hub/directory?done=suspended")
    assert "suspended" in await page.locator("#member-th").inner_text()
    assert directory.version() == start + 2
