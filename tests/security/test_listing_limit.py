"""A member cannot fill a node with listings (``max_listings_per_member``): past the limit,
its new listings are quarantined as ``over_listing_limit`` and the pull goes on; what it
holds already still changes and goes (a withdrawal is never refused), a withdrawal makes
room for one more, and once the operator raises the limit, ``cattc sync now --peer ID
--from-start`` takes what was refused."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from node.cli.main import cli
from tests.federation.network import NodeFactory, allowed_for, held_by, start_network
from tests.federation.rounds import (
    assert_hub_holds_allowed,
    new_listing_like,
    quarantined,
    retitle,
    sync_until_clean,
)

LIMIT = 3


async def test_a_member_is_held_to_the_limit_and_its_changes_still_apply(
    node_factory: NodeFactory,
) -> None:
    net = await start_network(node_factory, ["vn"], max_listings_per_member=LIMIT)
    vn = net.nodes["vn"]
    shared = sorted(allowed_for(vn, "cn"))
    assert len(shared) > LIMIT + 2, "the sample shares more than the limit with the hub"

    run = (await sync_until_clean(net))[-1]
    held = held_by(net.hub, "vn")
    assert len(held) == LIMIT and set(held) < set(shared)
    refused = [r for r in quarantined(net.hub, "vn") if r.code == "over_listing_limit"]
    assert len(refused) == len(shared) - LIMIT and run.rejected == len(refused)
    assert "max_listings_per_member" in refused[0].message
    assert net.hub.sync.store.peer_cursor("vn").cursor is not None  # the pull went on

    # At the limit, a held listing still changes, and a withdrawal still applies.
    first, second = sorted(held)[:2]
    retitle(vn, first, " (changed at the limit)")
    await sync_until_clean(net)
    assert held_by(net.hub, "vn")[first]["fields"]["title"]["en"].endswith("at the limit)")
    vn.runtime.listings.withdraw(second)
    await sync_until_clean(net)
    assert second not in held_by(net.hub, "vn") and len(held_by(net.hub, "vn")) == LIMIT - 1

    # The room it made takes one new listing, and only one.
    made = [new_listing_like(vn, first, f"New listing {i}") for i in range(2)]
    await sync_until_clean(net)
    now_held = held_by(net.hub, "vn")
    assert len(now_held) == LIMIT and made[0] in now_held and made[1] not in now_held


async def test_raising_the_limit_and_pulling_from_the_start_takes_what_was_refused(
    node_factory: NodeFactory,
) -> None:
    net = await start_network(node_factory, ["vn"], max_listings_per_member=LIMIT)
    await sync_until_clean(net)
    assert len(held_by(net.hub, "vn")) == LIMIT
    await sync_until_clean(net)  # a pull from where it was leaves them refused
    assert len(held_by(net.hub, "vn")) == LIMIT

    net.hub.sync.store.max_per_origin = 1_000  # the operator raised the limit
    net.hub.sync.store.reset_cursor("vn")  # what `cattc sync now --from-start` does first
    await sync_until_clean(net)
    assert_hub_holds_allowed(net)


def test_from_start_needs_one_peer(tmp_path: Path) -> None:
    runner = CliRunner(env={"CATTC_DEBUG": ""})
    result = runner.invoke(
        cli,
        ["sync", str(tmp_path), "now", "--from-start"],
        prog_name="cattc",
        catch_exceptions=False,
    )
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        "error: --from-start needs --peer: one peer's feed is read again at a time"
    ]
