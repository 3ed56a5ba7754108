"""The hub operator's monitor (DESIGN 9): ``/hub/status`` and ``/metrics`` behind the admin
token, per member state and holdings that agree with what the hub really holds, rejected
items counted with their reasons, and no hub endpoints on a national node."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from sqlalchemy.orm import Session

from node.hub import monitor
from node.hub.monitor import hub_status
from node.storage.models import RemoteListingRow
from tests.federation.network import NodeFactory, held_by, start_network
from tests.federation.rounds import quarantined, retitle
from tests.hub.helpers import get_json
from tests.nodes import RunningNode

MEMBERS = ("th", "vn")


def gauges(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page: (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def metrics_text(http: aiohttp.ClientSession, hub: RunningNode) -> str:
    async with http.get(hub.url + "/metrics", headers=hub.admin_headers) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        return await resp.text()


async def test_status_and_metrics_need_the_admin_token(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_network(node_factory, ["th"], load_sample=False)
    hub, th = net.hub, net.nodes["th"]
    for path in ("/hub/status", "/metrics"):
        for token in (None, "wrong", th.token):  # a member's admin token is not the hub's
            status, body = await get_json(http, hub.url + path, token=token)
            assert status == 401, (path, token)
            assert body["error"]["code"] == "unauthorized"
        async with http.get(hub.url + path, headers={"Authorization": hub.token}) as resp:
            assert resp.status == 401  # the token without the Bearer scheme
        status, _ = await get_json(http, hub.url + path, token=hub.token)
        assert status == 200, path


async def test_members_state_holdings_and_rejects(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_network(node_factory, MEMBERS, load_sample=True)
    hub = net.hub
    runs = await hub.sync.sync_all()
    assert all(r.error is None for r in runs), [r.error for r in runs]

    status, body = await get_json(http, hub.url + "/hub/status", token=hub.token)
    assert status == 200
    members = {m["node_id"]: m for m in body["members"]}
    assert set(members) == set(MEMBERS)
    held = {m: len(held_by(hub, m)) for m in MEMBERS}
    for node_id, m in members.items():
        assert m["state"] == "ok", m
        assert m["items_held"] == held[node_id] > 0
        assert (m["rejected"], m["recent_rejects"], m["failures"]) == (0, [], 0)
        assert m["lag"] == 0 and m["last_error"] is None
        assert m["last_success"] is not None and m["last_success_age_ms"] >= 0
        assert m["recent_runs"][0]["applied"] == held[node_id]
        assert m["country"] == node_id.upper() and m["groups"] == ["mou"]
    assert body["totals"]["items_held"] == sum(held.values())
    assert body["totals"]["rejected"] == 0

    samples = gauges(await metrics_text(http, hub))
    for node_id in MEMBERS:
        member = (("member", node_id),)
        assert samples[("cattc_member_items_held", member)] == held[node_id]
        assert samples[("cattc_member_rejected_items", member)] == 0
        assert samples[("cattc_member_lag_entries", member)] == 0
        assert samples[("cattc_member_ok", (("member", node_id), ("state", "ok")))] == 1

    # The hub already holds a newer version of one th listing than th now sends (th was
    # restored from an old backup): th's next summary of it is quarantined as stale.
    th = net.nodes["th"]
    victim = sorted(held_by(hub, "th"))[0]
    with Session(hub.runtime.engine) as session, session.begin():
        row = session.get(RemoteListingRow, ("th", victim))
        assert row is not None
        row.version = 99
    retitle(th, victim, " (revised)")
    run = await hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None and run.rejected == 1
    [bad] = quarantined(hub, "th")
    assert bad.code == "stale_version"

    status, body = await get_json(http, hub.url + "/hub/status", token=hub.token)
    members = {m["node_id"]: m for m in body["members"]}
    assert members["th"]["rejected"] == 1 and members["vn"]["rejected"] == 0
    [reject] = members["th"]["recent_rejects"]
    assert reject["code"] == "stale_version" and "not newer than held v99" in reject["message"]
    assert members["th"]["recent_runs"][0]["rejected"] == 1
    assert members["th"]["items_held"] == held["th"]  # the held copy stays
    assert body["totals"]["rejected"] == 1

    text = await metrics_text(http, hub)
    assert f'cattc_member_items_held{{member="th"}} {float(held["th"])}' in text.splitlines()
    samples = gauges(text)
    assert samples[("cattc_member_rejected_items", (("member", "th"),))] == 1
    assert samples[("cattc_member_rejected_items", (("member", "vn"),))] == 0


async def test_hub_endpoints_do_not_exist_on_a_national_node(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_network(node_factory, ["th"], load_sample=False)
    th = net.nodes["th"]
    paths = ("/hub/status", "/metrics", "/hub/dashboard", "/api/v1/search", "/admin/v1/matches")
    for path in paths:  # not routes of a member at all: the router's own 404
        status, body = await get_json(http, th.url + path, token=th.token)
        assert status == 404, path
        assert body == {"error": {"code": "not_found", "message": "Not Found"}}, path
    # and on the hub, the dashboard page is served (its script asks for the token)
    async with http.get(net.hub.url + "/hub/dashboard") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"


async def test_a_slow_pass_over_the_held_summaries_is_reused_for_a_while(
    node_factory: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The members' policy versions and oldest copies come from one pass over every held
    summary: at a hub where that pass is slow, a status asked again within REUSE_S reuses
    it; where it is quick, each status reads them afresh."""
    net = await start_network(node_factory, ["th"], load_sample=True)
    hub = net.hub
    assert all(r.error is None for r in await hub.sync.sync_all())

    def oldest() -> int:
        [member] = [m for m in hub_status(hub.runtime)["members"] if m["node_id"] == "th"]
        return int(member["oldest_copy_age_ms"])

    def age_rows(ms: int) -> None:
        with Session(hub.runtime.engine) as session, session.begin():
            session.execute(
                update(RemoteListingRow)
                .where(RemoteListingRow.origin == "th")
                .values(received_at=RemoteListingRow.received_at - ms)
            )

    first = oldest()
    age_rows(1_000)
    assert oldest() >= first + 1_000  # a quick pass: read afresh

    monkeypatch.setattr(monitor, "SLOW_PASS_S", 0.0)  # every pass counts as slow
    before = oldest()
    age_rows(5_000)
    assert oldest() < before + 5_000  # the pass before is reused
    monkeypatch.setattr(monitor, "REUSE_S", 0.0)  # ... until REUSE_S has passed
    assert oldest() >= before + 5_000
