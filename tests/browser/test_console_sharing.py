"""The issue's flow in a real browser: an editor at a member node stops sharing a field
with the hub in the grid, reads the preview, applies, and after one sync round the hub's
copy no longer has the field. Every page passes axe-core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Page

from tests.browser.helpers import add_staff, describe, serious_axe_findings, shot, sign_in
from tests.federation.network import NodeFactory, held_by
from tests.hub.helpers import start_hub_network


async def _check(page: Page, tmp_path: Path, name: str) -> None:
    findings = await serious_axe_findings(page)
    assert not findings, f"{name}: {describe(findings)}"
    await shot(page, tmp_path, name)


def _offers(held: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i: v for i, v in held.items() if v["category"] == "tech_offer"}


async def test_change_a_rule_in_the_grid_and_the_hub_copy_changes(
    node_factory: NodeFactory, page: Page, tmp_path: Path
) -> None:
    net = await start_hub_network(node_factory, ["vn"], load_hub_sample=False)
    hub, vn = net.hub, net.nodes["vn"]
    runs = await hub.sync.sync_all()
    assert all(r.error is None for r in runs), [r.error for r in runs]
    offers = _offers(held_by(hub, "vn"))
    assert offers and all("summary" in v["fields"] for v in offers.values())

    add_staff(vn, "lan", "editor")
    await sign_in(page, vn, "lan")
    await page.get_by_role("link", name="Sharing rules").click()
    await page.wait_for_url("**/console/sharing")
    await _check(page, tmp_path, "grid")

    await page.locator('button[value="tech_offer|cn"]').click()
    await page.get_by_role("heading", level=1).wait_for()
    assert "Technology offers" in await page.get_by_role("heading", level=1).inner_text()
    await _check(page, tmp_path, "cell")
    fields = page.get_by_role("group", name="Which fields")
    await fields.get_by_label("summary", exact=True).uncheck()
    await page.get_by_role("button", name="Save to the draft").click()
    await page.get_by_text("Draft, not applied yet.").wait_for()
    assert "changed" in await page.locator("td.changed").inner_text()
    await _check(page, tmp_path, "draft")

    await page.get_by_role("button", name="Preview and apply").click()
    await page.get_by_role("heading", name="Preview of the sharing rules").wait_for()
    changes = await page.locator("ul.changes").inner_text()
    assert "fields removed: summary" in changes
    hub_row = await page.get_by_role("row", name="China (cn)").inner_text()
    assert f"summary ×{len(offers)}" in hub_row
    await _check(page, tmp_path, "preview")

    await page.get_by_role("button", name="Apply these rules").click()
    await page.get_by_role("status").wait_for()
    assert "Policy version 2 is active" in await page.get_by_role("status").inner_text()
    await _check(page, tmp_path, "applied")
    assert vn.runtime.policy.active().author == "lan"

    runs = await hub.sync.sync_all()
    assert all(r.error is None for r in runs), [r.error for r in runs]
    after = _offers(held_by(hub, "vn"))
    assert set(after) == set(offers)
    assert all("summary" not in v["fields"] and "title" in v["fields"] for v in after.values())

    listing_id = sorted(offers)[0]
    await page.goto(f"{vn.url}/console/sharing/explain/{listing_id}?audience=cn")
    assert "Shared." in await page.locator("main").inner_text()
    await _check(page, tmp_path, "explain")

    await page.goto(vn.url + "/console/sharing/text")
    await page.get_by_label("Policy (YAML)").fill("rules:\n  - audience: MoU\n")
    await page.get_by_role("button", name="Check").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "unknown group 'MoU'" in await alert.inner_text()
    await _check(page, tmp_path, "text-errors")
