"""Key rotation end to end: a node rotates its signing key and the hub keeps up.

The hub meets the new key (on a feed page, or on a request), refetches the node's identity
document once, learns the new key and when the old one expired, and carries on; what the
old key signed before it expired still verifies (``cattc verify``). A second unknown key
within the refetch window does not trigger another fetch: it is refused until the window
has passed. The hub's clock is held still (and moved by hand) so that window is exact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import aiohttp
import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from node.cli.main import cli
from node.config import KEY_FILE
from node.services.remote_store import RemoteStore
from node.services.sync_manager import IDENTITY_REFETCH_MS
from node.storage.models import PeerStateRow
from tests.federation.clocks import HeldClock, TickingClock
from tests.federation.network import NodeFactory, add_member, hub_key, load_records
from tests.node.sample import sample_records
from tests.nodes import RunningNode


@dataclass
class Fetches:
    """Every URL the hub's HTTP session asked for."""

    urls: list[str] = field(default_factory=list)

    def identity_of(self, node: RunningNode) -> int:
        return self.urls.count(node.url + "/.well-known/cattc-node")


@dataclass
class Rig:
    hub: RunningNode
    th: RunningNode
    clock: HeldClock
    fetches: Fetches


@pytest.fixture
async def rig(node_factory: NodeFactory) -> AsyncIterator[Rig]:
    fetches = Fetches()

    async def on_request_start(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        fetches.urls.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        clock = HeldClock()
        hub = await node_factory("cn", is_hub=True, clock=clock, http=session)
        th = await node_factory(
            "th", clock=TickingClock(), hub_url=hub.url, hub_key=hub_key(hub), hub_id="cn"
        )
        add_member(hub, th)
        yield Rig(hub, th, clock, fetches)


def rotate(node: RunningNode) -> int:
    """What ``cattc keys rotate`` and a restart do; returns when the old key expired."""
    rt = node.runtime
    at = rt.clock()
    rt.keys.rotate(at).save(rt.data_dir / KEY_FILE)
    rt.reload_keys()
    return at


def revise(node: RunningNode, listing_id: str) -> None:
    record = node.runtime.listings.get(listing_id).record
    title = {**record["title"], "en": record["title"]["en"] + " (revised)"}
    node.runtime.listings.update(listing_id, {**record, "title": title})


def signed_with(hub: RunningNode) -> dict[str, tuple[int, str]]:
    """th's listings the hub holds: id -> (version, key that signed it)."""
    rows = RemoteStore(hub.runtime.engine).held("th")
    return {r.listing_id: (r.version, r.key_name) for r in rows}


def known_keys(hub: RunningNode) -> dict[str, dict[str, object]]:
    member = hub.runtime.directory.get("th")
    assert member is not None
    return member.keys


def cursor(hub: RunningNode) -> str | None:
    with Session(hub.runtime.engine) as session:
        row = session.get(PeerStateRow, "th")
        return row.cursor if row else None


def verify_ok(hub: RunningNode, count: int) -> None:
    result = CliRunner().invoke(cli, ["verify", str(hub.data_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"verified {count} of {count} stored summaries, 0 bad\n"


async def test_the_hub_learns_a_rotated_key_from_the_feed(rig: Rig) -> None:
    hub, th = rig.hub, rig.th
    load_records(th, sample_records("th")[:6])
    first = await hub.sync.sync_peer("th", force=True)
    assert first is not None and first.error is None and first.applied >= 3
    before = signed_with(hub)
    a, b = sorted(before)[:2]
    assert {name for _, name in before.values()} == {"ed25519:1"}

    # th rotates and changes a listing: page and item now carry ed25519:2, unknown to the hub
    expired_1 = rotate(th)
    revise(th, a)
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None and run.applied == 1
    assert rig.fetches.identity_of(th) == 1
    keys = known_keys(hub)
    assert keys["ed25519:1"]["expired_at"] == expired_1
    assert keys["ed25519:2"]["key"] == th.runtime.keys.verify_keys()["ed25519:2"].b64
    held = signed_with(hub)
    assert held[a] == (before[a][0] + 1, "ed25519:2")
    assert {k: v for k, v in held.items() if k != a} == {k: v for k, v in before.items() if k != a}
    # what ed25519:1 signed before it expired still verifies
    verify_ok(hub, len(held))

    # th rotates again, within a minute of the hub's refetch: no second fetch, page refused
    expired_2 = rotate(th)
    revise(th, b)
    at = cursor(hub)
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is not None and run.error.startswith("key_not_valid")
    assert rig.fetches.identity_of(th) == 1
    assert "ed25519:3" not in known_keys(hub)
    assert cursor(hub) == at and signed_with(hub) == held

    # once the window has passed, the next run refetches and catches up
    rig.clock.now += IDENTITY_REFETCH_MS
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None and run.applied == 1
    assert rig.fetches.identity_of(th) == 2
    keys = known_keys(hub)
    assert keys["ed25519:2"]["expired_at"] == expired_2 and "ed25519:3" in keys
    final = signed_with(hub)
    assert final[b] == (held[b][0] + 1, "ed25519:3") and final[a] == held[a]
    assert {name for _, name in final.values()} == {"ed25519:1", "ed25519:2", "ed25519:3"}
    verify_ok(hub, len(final))


async def test_the_hub_learns_a_rotated_key_from_a_request(rig: Rig) -> None:
    hub, th = rig.hub, rig.th
    assert (await th.sync.sync_peer("cn", force=True)).error is None  # type: ignore[union-attr]

    expired_1 = rotate(th)
    run = await th.sync.sync_peer("cn", force=True)
    assert run is not None and run.error is None, run
    assert rig.fetches.identity_of(th) == 1
    assert known_keys(hub)["ed25519:1"]["expired_at"] == expired_1

    rotate(th)
    run = await th.sync.sync_peer("cn", force=True)
    assert run is not None and run.error is not None
    assert "401: key_not_valid" in run.error
    assert rig.fetches.identity_of(th) == 1
    assert "ed25519:3" not in known_keys(hub)

    rig.clock.now += IDENTITY_REFETCH_MS
    run = await th.sync.sync_peer("cn", force=True)
    assert run is not None and run.error is None, run
    assert rig.fetches.identity_of(th) == 2
    assert "ed25519:3" in known_keys(hub)
