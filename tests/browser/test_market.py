"""A visitor in a real browser at the hub's marketplace: searches, narrows by a facet,
opens a listing, sends an expression of interest (first with a mistake, shown in place),
sees the confirmation; after a sync round the owner's node holds it; the language
picker switches the page to Chinese. Every page passes axe-core."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page

from node.hub import eoi as eoi_service
from tests.browser.helpers import describe, serious_axe_findings, shot
from tests.federation.network import NodeFactory
from tests.hub.market_net import interests, market_network
from tests.hub.test_eoi import pull_hub


async def accessible(page: Page, tmp_path: Path, name: str) -> None:
    findings = await serious_axe_findings(page)
    assert not findings, f"{name}: {describe(findings)}"
    await shot(page, tmp_path, name)


async def test_visitor_searches_filters_and_expresses_interest(
    node_factory: NodeFactory, page: Page, tmp_path: Path
) -> None:
    net = await market_network(node_factory)
    hub, th = net.hub, net.nodes["th"]

    await page.goto(hub.url + "/")
    assert await page.get_attribute("html", "lang") == "en"
    await accessible(page, tmp_path, "market-home")

    await page.get_by_label("Search technologies and needs").fill("water")
    await page.get_by_role("button", name="Search", exact=True).click()
    await page.wait_for_url("**/?q=water*")
    results = page.locator("ol.hits > li")
    assert await results.count() > 0
    await accessible(page, tmp_path, "market-search")

    facets = page.get_by_role("navigation", name="Filters")
    await facets.locator('a[data-facet="country"][data-value="TH"]').click()
    await page.wait_for_url("**country=TH*")
    assert "q=water" in page.url
    current = facets.locator('a[aria-current="true"]')
    assert await current.count() == 1
    await accessible(page, tmp_path, "market-filtered")

    first = results.first.get_by_role("link")
    title = (await first.inner_text()).strip()
    await first.click()
    await page.wait_for_url("**/market/listing/th/*")
    assert (await page.get_by_role("heading", level=1).inner_text()).strip() == title
    assert "Listed by" in await page.inner_text("main")
    await accessible(page, tmp_path, "market-listing")

    # A mistake first: shown beside its field, nothing sent.
    await page.get_by_label("Your email address").fill("lan at sme")
    await page.get_by_label("Your message to the center").fill("We would like a licence.")
    await page.get_by_role("button", name="Send to the center").click()
    error = page.locator("#interest-email-error")
    await error.wait_for()
    assert "email address like" in await error.inner_text()
    assert await page.get_by_role("alert").count() == 1
    assert interests(hub) == []
    await accessible(page, tmp_path, "market-form-errors")

    await page.get_by_label("Your name").fill("Nguyen Thi Lan")
    await page.get_by_label("Your email address").fill("lan@sme.example")
    await page.get_by_label("Your organisation (optional)").fill("Hanoi Agritech")
    await page.get_by_role("button", name="Send to the center").click()
    await page.wait_for_url("**/market/sent")
    assert "sent to the center" in await page.inner_text("main")
    assert "@" not in await page.inner_text("main")  # no contact of the owner's
    await accessible(page, tmp_path, "market-sent")

    [row] = interests(hub)
    assert row.state == "forwarded" and row.owner == "th"
    await pull_hub(th)
    got = {e["id"]: e for e in await th.runtime.run(eoi_service.list_eois, th.runtime, 50)}
    assert got[row.id]["visitor"]["name"] == "Nguyen Thi Lan"
    assert got[row.id]["message"] == "We would like a licence."

    # The language picker: the page comes back in Chinese.
    await page.goto(hub.url + "/?q=water")
    await page.get_by_label("Language").select_option("zh")
    await page.wait_for_function("document.documentElement.lang === 'zh'")
    assert "q=water" in page.url
    await accessible(page, tmp_path, "market-zh")
