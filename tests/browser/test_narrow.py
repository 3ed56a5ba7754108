"""The pages on a phone (390 px wide) and by keyboard: nothing wider than the window (wide
tables scroll in their own box), the menu marks where one is, the skip link reaches the
content, countries are named, and the marketplace's results come before its filters."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, ViewportSize

from tests.browser.helpers import add_staff, describe, serious_axe_findings, shot, sign_in
from tests.federation.network import NodeFactory
from tests.hub.market_net import market_network

PHONE: ViewportSize = {"width": 390, "height": 800}


async def fits(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide on a 390 px window"
    findings = await serious_axe_findings(page)
    assert not findings, describe(findings)


async def test_console_and_marketplace_on_a_phone(
    node_factory: NodeFactory, page: Page, tmp_path: Path
) -> None:
    net = await market_network(node_factory)
    hub, th = net.hub, net.nodes["th"]
    add_staff(th, "lan", "editor")
    await page.set_viewport_size(PHONE)
    await sign_in(page, th, "lan")

    for name, path in (("home", "/console"), ("listings", "/console/listings")):
        await page.goto(th.url + path)
        await fits(page)
        await shot(page, tmp_path, f"phone-{name}")
        nav = page.get_by_role("navigation", name="Main")
        assert await nav.locator('a[aria-current="page"]').get_attribute("href") == path

    # The listing form names each country in the page's language.
    await page.goto(th.url + "/console/listings/new?category=tech_offer")
    await fits(page)
    country = page.locator("select[name=country]")
    assert await country.locator('option[value="TH"]').inner_text() == "Thailand (TH)"
    await page.goto(th.url + "/ui/lang?lang=vi&next=/console/listings/new?category=tech_offer")
    assert await country.locator('option[value="VN"]').inner_text() == "Việt Nam (VN)"
    await page.goto(th.url + "/ui/lang?lang=en&next=/console/listings")

    # The listings table is wider than the phone: its box scrolls and takes the focus.
    box = page.locator(".table-scroll").first
    assert await box.evaluate("b => b.scrollWidth > b.clientWidth")
    assert await box.get_attribute("tabindex") == "0"

    await page.goto(th.url + "/console")
    # Keyboard only: the first Tab shows the skip link, Enter moves the focus to the content.
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    assert await skip.evaluate("a => a === document.activeElement")
    assert await skip.evaluate("a => a.getBoundingClientRect().left >= 0")
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"

    # The marketplace: results first, the filters folded behind their heading.
    await page.goto(hub.url + "/")
    await fits(page)
    await shot(page, tmp_path, "phone-market")
    facets = page.locator("details.facet-box")
    assert not await facets.evaluate("d => d.open")
    await page.locator("details.facet-box > summary").click()
    thailand = facets.locator('a[data-facet="country"][data-value="TH"]')
    assert "Thailand" in await thailand.inner_text()
    await shot(page, tmp_path, "phone-market-filters")
