"""What was shared with whom, in a real browser: after a sync round the member's console
shows that the hub received listing X version N, per peer and per listing, and later that
X was withdrawn from it; every page passes axe-core."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page

from tests.browser.helpers import add_staff, describe, serious_axe_findings, shot, sign_in
from tests.federation.network import NodeFactory, allowed_for
from tests.hub.helpers import start_hub_network


async def check_page(page: Page, tmp_path: Path, name: str) -> None:
    findings = await serious_axe_findings(page)
    assert not findings, describe(findings)
    await shot(page, tmp_path, name)


async def test_console_shows_what_the_hub_received(
    node_factory: NodeFactory, page: Page, tmp_path: Path
) -> None:
    net = await start_hub_network(node_factory, ["th"])
    th = net.nodes["th"]
    add_staff(th, "malee", "viewer")
    await page.goto(th.url + "/console/shared")
    assert "/console/login" in page.url  # signed out: the login page first
    await sign_in(page, th, "malee")

    await page.goto(th.url + "/console/shared")
    assert "No peer has received any of your listings yet." in await page.inner_text("main")

    await net.hub.sync.sync_peer("th", force=True)  # the hub pulls th's feed
    shared = allowed_for(th, "cn")
    listing_id, view = sorted(shared.items())[0]
    version = view["version"]

    await page.goto(th.url + "/console/shared")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="cn", exact=True))
    cells = await row.get_by_role("cell").all_inner_texts()
    assert cells[0] == str(len(shared))  # listings the hub received
    await check_page(page, tmp_path, "shared-peers")

    await page.get_by_role("link", name="cn", exact=True).click()
    await page.wait_for_url("**/console/shared/cn")
    assert await page.get_by_role("heading", level=1).inner_text() == "Shared with cn"
    assert await page.get_by_role("link", name=listing_id, exact=True).count() == 1
    await check_page(page, tmp_path, "shared-peer-cn")

    await page.get_by_role("link", name=listing_id, exact=True).click()
    await page.wait_for_url(f"**/console/listings/{listing_id}/shared")
    holdings = page.get_by_role("table", name="Each peer's latest version")
    hub_row = holdings.get_by_role("row").filter(has=page.get_by_role("link", name="cn"))
    cells = await hub_row.get_by_role("cell").all_inner_texts()
    assert cells[0] == str(version)
    assert cells[2] == "No, it still holds it"
    await check_page(page, tmp_path, "shared-listing")

    # Withdrawn at th, and the hub pulls again: the console says it was withdrawn from it.
    th.runtime.listings.withdraw(listing_id)
    await net.hub.sync.sync_peer("th", force=True)
    await page.reload()
    cells = await hub_row.get_by_role("cell").all_inner_texts()
    assert cells[0] == str(version) and cells[2].startswith("Yes, ")
    history = await page.get_by_role("table", name="Every version sent, newest first").inner_text()
    assert "Withdrawal" in history and "Listing summary" in history
    await check_page(page, tmp_path, "shared-listing-withdrawn")

    await page.goto(th.url + "/console/listings/th-no-such/shared")
    assert "This node has no listing with that id." in await page.get_by_role("alert").inner_text()
    await page.goto(th.url + "/console/shared/cn?page=9")
    assert "There is no such page." in await page.get_by_role("alert").inner_text()
