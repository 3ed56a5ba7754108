"""The console's first page: listings per category, interest waiting, sync per peer."""

from __future__ import annotations

from tests.browser.helpers import add_staff
from tests.federation.network import NodeFactory, load_records
from tests.node.sample import sample_records
from tests.security.console_client import Console


async def test_home_sums_up_the_center(node_factory: NodeFactory) -> None:
    node = await node_factory("th")
    load_records(node, sample_records("th"))
    add_staff(node, "somchai", "viewer")
    async with Console(node) as console:
        assert (await console.login("somchai")).status == 303
        page = await console.get("/console")
    assert page.status == 200, page.text
    counts = node.runtime.listings.counts()
    offers = sum(n for k, n in counts["tech_offer"].items() if k != "withdrawn")
    assert offers > 0
    assert '<a href="/console/listings?category=tech_offer">Technology offer</a></td>' in page.text
    assert f"<td>{offers}</td>" in page.text
    assert "No expression of interest waits for an answer." in page.text
    assert "This node reads no other node&#39;s feed." in page.text  # no hub configured


async def test_home_is_for_signed_in_staff(node_factory: NodeFactory) -> None:
    node = await node_factory("th")
    async with Console(node) as console:
        page = await console.get("/console")
    assert page.status == 302 and page.location.startswith("/console/login")
