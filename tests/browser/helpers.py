"""Driving Debian's chromium with Playwright: a fresh browser per test, screenshots under
the test's temp dir, axe-core's accessibility check, signing in as a staff user."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

from node.ui.accounts import StaffUser, create_user
from tests.nodes import RunningNode

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"
SERIOUS = frozenset({"serious", "critical"})


def chromium_path() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Debian's chromium is not installed; run 'make test' (it installs it)"
    return exe


def add_staff(node: RunningNode, name: str, role: str) -> StaffUser:
    rt = node.runtime
    return create_user(rt.engine, name, PASSWORD, role, now_ms=rt.clock())


async def sign_in(page: Page, node: RunningNode, name: str, password: str = PASSWORD) -> None:
    await page.goto(node.url + "/console/login")
    await page.get_by_label("User name").fill(name)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(lambda url: "/console/login" not in url)


async def shot(page: Page, directory: Path, name: str) -> Path:
    """A full-page screenshot ``<directory>/screenshots/<name>.png``."""
    target = directory / "screenshots" / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(target), full_page=True)
    return target


async def serious_axe_findings(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings on the page as it is now."""
    results = await Axe().run(page)
    violations: list[dict[str, Any]] = results.response["violations"]
    return [v for v in violations if v.get("impact") in SERIOUS]


def describe(findings: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{f['id']}: {f['help']} ({[n['target'] for n in f['nodes']][:3]})" for f in findings
    )
