"""The pages in the visitor's language, in a real browser: the browser's language picks it
on a first visit, the picker changes it (and it sticks), listings show their title in that
language when they have one, and the console speaks it too. Each page passes axe-core, and
the screenshots show the Chinese and Thai glyphs (Debian's fonts, ``make browser``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page

from node.market.pages import listing_url
from node.ui.i18n import translations
from tests.browser.helpers import add_staff, describe, serious_axe_findings, shot, sign_in
from tests.federation.network import NodeFactory
from tests.hub.market_net import market_network, shown_expected

MARKET_HEADING = "Find a technology, or a partner for your need"


def said(lang: str, message: str) -> str:
    """``message`` in ``lang``; the test insists it is translated, not left in English."""
    text = translations(lang).gettext(message)
    assert text != message, f"{message!r} is not translated into {lang}"
    return text


async def checked(page: Page, tmp_path: Path, name: str) -> None:
    findings = await serious_axe_findings(page)
    assert not findings, f"{name}: {describe(findings)}"
    await shot(page, tmp_path, name)


def with_title_in(net: Any, lang: str) -> tuple[str, str, str]:
    """(owner, listing id, title in ``lang``) of a public listing that has that title."""
    for (owner, lid), view in sorted(shown_expected(net).items()):
        title = view.get("fields", {}).get("title", {})
        if isinstance(title, dict) and title.get(lang) and title.get(lang) != title.get("en"):
            return owner, lid, str(title[lang])
    raise AssertionError(f"no public listing has a {lang} title")


async def test_marketplace_follows_the_browser_then_the_picker(
    node_factory: NodeFactory, browser: Browser, tmp_path: Path
) -> None:
    net = await market_network(node_factory)
    hub = net.hub
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    try:
        # First visit: the browser says Chinese (Accept-Language), the page answers in it.
        await page.goto(hub.url + "/")
        assert await page.get_attribute("html", "lang") == "zh"
        heading = page.get_by_role("heading", level=1)
        assert (await heading.inner_text()).strip() == said("zh", MARKET_HEADING)
        await checked(page, tmp_path, "market-zh")

        # A listing with a Chinese title shows it.
        owner, lid, title = with_title_in(net, "zh")
        await page.goto(hub.url + listing_url(owner, lid))
        assert (await heading.inner_text()).strip() == title
        await checked(page, tmp_path, "market-listing-zh")

        # The picker: Thai, kept on the next page (a cookie), over the browser's language.
        await page.get_by_label(said("zh", "Language")).select_option("th")
        await page.wait_for_function("document.documentElement.lang === 'th'")
        await page.goto(hub.url + "/")
        assert await page.get_attribute("html", "lang") == "th"
        assert (await heading.inner_text()).strip() == said("th", MARKET_HEADING)
        await checked(page, tmp_path, "market-th")

        await page.goto(hub.url + "/?lang=vi")
        assert (await heading.inner_text()).strip() == said("vi", MARKET_HEADING)
        await checked(page, tmp_path, "market-vi")
    finally:
        await context.close()


async def test_the_console_in_each_language(
    node_factory: NodeFactory, page: Page, tmp_path: Path
) -> None:
    node = await node_factory("vn")
    add_staff(node, "lan", "editor")
    await sign_in(page, node, "lan")
    for lang in ("vi", "zh", "th"):
        await page.goto(node.url + "/console/listings")
        await page.locator("#lang-picker").select_option(lang)
        await page.wait_for_function(f"document.documentElement.lang === '{lang}'")
        nav = page.get_by_role("navigation", name=said(lang, "Main"))
        assert said(lang, "Sharing rules") in await nav.inner_text()
        assert said(lang, "Sign out") in await page.inner_text("header")
        await checked(page, tmp_path, f"console-listings-{lang}")
    # Signed out, the login page keeps the chosen language.
    await page.get_by_role("button", name=said("th", "Sign out")).click()
    await page.wait_for_url("**/console/login")
    assert await page.get_attribute("html", "lang") == "th"
    assert said("th", "Sign in") in await page.inner_text("main")
