"""The issue's flow "accept an EoI" in a real browser: a hub and two centers. Vietnam's
editor reads a match and expresses interest in Thailand's listing; after a sync round
Thailand's editor opens the interest, accepts sharing two contact fields; after the next
round Vietnam sees the answer. Every page passes axe-core with no serious findings."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Locator, Page

from tests.browser.helpers import add_staff, describe, serious_axe_findings, shot, sign_in
from tests.federation.network import NodeFactory
from tests.node.test_console_inbox import matched_network, notice_for_th, pull_hub
from tests.nodes import RunningNode


def nav(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Main")


async def check_page(page: Page, tmp_path: Path, name: str) -> None:
    findings = await serious_axe_findings(page)
    assert not findings, describe(findings)
    await shot(page, tmp_path, name)


async def test_accept_an_expression_of_interest(
    node_factory: NodeFactory, page: Page, tmp_path: Path
) -> None:
    net = await matched_network(node_factory)  # the hub has matched; notices pulled
    th, vn = net.nodes["th"], net.nodes["vn"]
    notice_id, notice = notice_for_th(vn)
    listing = notice["counterpart"]["listing_id"]
    contact = th.runtime.listings.get(listing).record["contact"]
    add_staff(vn, "minh", "editor")
    add_staff(th, "somchai", "editor")

    # Vietnam: the matches, one match's explanation, and interest sent from it.
    await sign_in(page, vn, "minh")
    await nav(page).get_by_role("link", name="Matches", exact=True).click()
    await page.wait_for_url("**/console/matches")
    await page.get_by_role("heading", name="Matches the hub found").wait_for()
    await check_page(page, tmp_path, "1-matches")
    await page.goto(f"{vn.url}/console/matches/{notice_id}")
    await page.get_by_role("heading", name="Why the hub proposes it").wait_for()
    # The other listing's fields by their names, not their keys (ipc, trl).
    assert "IPC codes" in await page.inner_text("main")
    await page.get_by_role("button", name="Express interest").click()  # empty: refused
    assert "/interest" not in page.url  # the browser's own check keeps the form
    await page.get_by_label("Message to the other center").fill(
        "We would like to license this <b>for</b> Vietnam."
    )
    await check_page(page, tmp_path, "2-match")
    await page.get_by_role("button", name="Express interest").click()
    await page.wait_for_url("**/console/eois/vn-eoi-*?done=sent")
    eoi_id = page.url.split("/console/eois/")[1].split("?")[0]
    assert "sent, waiting for an answer" in await page.inner_text("main")
    await check_page(page, tmp_path, "3-interest-sent")

    # Thailand, after one sync round: the inbox, the interest, accepted with two fields.
    await pull_hub(th)
    await sign_in(page, th, "somchai")
    await nav(page).get_by_role("link", name="Interest", exact=True).click()
    await page.wait_for_url("**/console/eois")
    await check_page(page, tmp_path, "4-inbox")
    await page.get_by_role("link", name=f"Open {eoi_id}").click()
    await page.wait_for_url(f"**/console/eois/{eoi_id}")
    assert "We would like to license this <b>for</b> Vietnam." in await page.inner_text("main")
    await page.get_by_label(f"Email: {contact['email']}").check()
    await page.get_by_label(f"Phone: {contact['phone']}").check()
    await check_page(page, tmp_path, "5-interest-received")
    await page.get_by_role("button", name="Accept").click()
    await page.wait_for_url(f"**/console/eois/{eoi_id}?done=answered")
    main = await page.inner_text("main")
    assert "Your answer was sent through the hub." in main
    assert contact["email"] in main and contact["person"] not in main
    assert await page.get_by_role("button", name="Accept").count() == 0
    await check_page(page, tmp_path, "6-answered")

    # Vietnam, after the next round: the answer with the two fields chosen.
    await pull_hub(vn)
    await sign_in(page, vn, "minh")
    await page.goto(f"{vn.url}/console/eois/{eoi_id}")
    main = await page.inner_text("main")
    assert "accepted, contact received" in main
    assert contact["email"] in main and contact["phone"] in main
    assert contact["person"] not in main
    await check_page(page, tmp_path, "7-answer-received")
    await sync_page(page, vn, tmp_path)


async def sync_page(page: Page, node: RunningNode, tmp_path: Path) -> None:
    """The sync page and its custody check, as the same editor."""
    await page.goto(f"{node.url}/console/sync")
    await page.get_by_role("button", name="Check custody").click()
    await page.get_by_role("status").first.wait_for()
    assert "The hub's copy matches your records." in await page.inner_text("main")
    await check_page(page, tmp_path, "8-sync")
