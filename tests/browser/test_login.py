"""Signing in to the console in a real browser; the page passes axe-core."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page

from tests.browser.helpers import add_staff, describe, serious_axe_findings, shot, sign_in
from tests.federation.network import NodeFactory


async def test_sign_in_and_out(node_factory: NodeFactory, page: Page, tmp_path: Path) -> None:
    node = await node_factory("th")
    add_staff(node, "somchai", "editor")

    await page.goto(node.url + "/console")
    assert "/console/login" in page.url  # signed out: the login page, keeping the target
    findings = await serious_axe_findings(page)
    assert not findings, describe(findings)
    await shot(page, tmp_path, "login")

    await page.get_by_label("User name").fill("somchai")
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("alert").wait_for()
    assert "Wrong user name or password" in await page.get_by_role("alert").inner_text()

    await sign_in(page, node, "somchai")
    assert page.url.endswith("/console")
    assert "somchai" in await page.inner_text("header")
    await shot(page, tmp_path, "console-home")

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/console/login")
    await page.goto(node.url + "/console")
    assert "/console/login" in page.url
