"""An admin adds an editor on the users page in a real browser, sees the error of a
mistyped password in place first, and finds the addition in the audit log; the new
editor can sign in and has no users page. Every page passes axe-core."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page

from tests.browser.helpers import add_staff, describe, serious_axe_findings, shot, sign_in
from tests.federation.network import NodeFactory

NEW_PASSWORD = "a long new password"


async def check_axe(page: Page) -> None:
    findings = await serious_axe_findings(page)
    assert not findings, describe(findings)


async def test_admin_adds_an_editor(node_factory: NodeFactory, page: Page, tmp_path: Path) -> None:
    node = await node_factory("th")
    add_staff(node, "ada", "admin")
    await sign_in(page, node, "ada")

    await page.get_by_role("link", name="Users").click()
    await page.wait_for_url("**/console/users")
    assert await page.get_by_role("heading", level=1).inner_text() == "Staff users"
    await check_axe(page)
    await shot(page, tmp_path, "users")

    await page.get_by_label("User name").fill("somchai")
    await page.get_by_label("Role", exact=True).select_option("editor")
    await page.get_by_label("Password (at least 10 characters)").fill(NEW_PASSWORD)
    await page.get_by_label("Password again").fill(NEW_PASSWORD + "x")
    await page.get_by_role("button", name="Add user").click()
    error = page.locator("#new-password-error")
    await error.wait_for()
    assert "The two passwords differ" in await error.inner_text()
    assert await page.get_by_label("User name").input_value() == "somchai"  # kept
    await check_axe(page)
    await shot(page, tmp_path, "users-error")

    await page.get_by_label("Password (at least 10 characters)").fill(NEW_PASSWORD)
    await page.get_by_label("Password again").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Add user").click()
    await page.get_by_role("status").filter(has_text="somchai").wait_for()
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="somchai"))
    assert "editor" in await row.inner_text()
    await check_axe(page)
    await shot(page, tmp_path, "users-added")

    await page.get_by_role("link", name="Audit log").click()
    await page.wait_for_url("**/console/audit")
    entry = page.get_by_role("row").filter(has_text="user.create").filter(has_text="somchai")
    assert "ada" in await entry.inner_text()
    await page.get_by_label("Who").select_option("ada")
    await page.get_by_role("button", name="Show").click()
    await page.wait_for_url("**/console/audit?actor=ada*")
    assert await page.get_by_role("row").filter(has_text="user.create").count() == 1
    await check_axe(page)
    await shot(page, tmp_path, "audit")

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/console/login")
    await sign_in(page, node, "somchai", NEW_PASSWORD)
    assert await page.get_by_role("link", name="Users").count() == 0
    assert await page.get_by_role("link", name="Audit log").count() == 1
