"""A member cannot fill a node's disk with items it refuses: quarantine keeps the newest
``max_quarantine_per_member`` of each member, and the hub's monitor still counts every
item refused (``/hub/status`` and ``/metrics``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.orm import Session

from node.cli.main import cli
from node.hub.monitor import hub_status
from node.storage.db import make_engine
from node.storage.models import QuarantineRow
from tests.conftest import DatabaseUrlFactory
from tests.federation.network import NodeFactory, allowed_for, held_by, start_network
from tests.federation.rounds import quarantined, sync_until_clean
from tests.migrating import upgrade_to

HELD = 2
KEPT = 3


def cattc(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), prog_name="cattc", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def rejected_of(status: dict[str, object], node_id: str) -> int:
    members = status["members"]
    assert isinstance(members, list)
    [member] = [m for m in members if m["node_id"] == node_id]
    return int(member["rejected"])


async def test_quarantine_keeps_the_newest_items_and_counts_them_all(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_network(
        node_factory,
        ["vn"],
        max_listings_per_member=HELD,
        max_quarantine_per_member=KEPT,
    )
    hub = net.hub
    refused = len(allowed_for(net.nodes["vn"], "cn")) - HELD
    assert refused > KEPT, "the sample must refuse more than quarantine keeps"

    await sync_until_clean(net)
    first = quarantined(hub, "vn")
    assert len(first) == KEPT and {r.code for r in first} == {"over_listing_limit"}
    assert rejected_of(hub_status(hub.runtime), "vn") == refused

    # The operator reads them, newest first, with the listing each names.
    out = await asyncio.to_thread(
        cattc, "sync", str(hub.data_dir), "quarantine", "--peer", "vn", "--json", "--items"
    )
    listed = json.loads(out)
    assert [r["received_at"] for r in listed] == sorted(r.received_at for r in first)[::-1]
    refused_ids = set(allowed_for(net.nodes["vn"], "cn")) - set(held_by(hub, "vn"))
    assert {r["listing_id"] for r in listed} <= refused_ids and len(listed) == KEPT
    for row in listed:
        assert row["code"] == "over_listing_limit" and "max_listings_per_member" in row["message"]
        assert json.loads(row["item"])["listing"]["id"] == row["listing_id"]
    text = await asyncio.to_thread(cattc, "sync", str(hub.data_dir), "quarantine", "--limit", "2")
    lines = text.splitlines()
    assert lines[0].split() == ["peer", "received", "code", "listing", "message"]
    assert len(lines) == 4 and all(line.startswith("vn ") for line in lines[2:])

    # The same feed read again: every item is refused again, and only the newest are kept.
    hub.sync.store.reset_cursor("vn")
    await sync_until_clean(net)
    second = quarantined(hub, "vn")
    assert len(second) == KEPT and min(r.id for r in second) > max(r.id for r in first)
    status = hub_status(hub.runtime)
    assert rejected_of(status, "vn") == 2 * refused
    assert status["totals"]["rejected"] == 2 * refused
    async with http.get(
        hub.url + "/metrics", headers={"Authorization": f"Bearer {hub.token}"}
    ) as resp:
        text = await resp.text()
    assert f'cattc_member_rejected_items{{member="vn"}} {float(2 * refused)}' in text


def test_the_migration_counts_what_quarantine_held(database_url: DatabaseUrlFactory) -> None:
    """A hub upgraded in place keeps reporting what it refused before: 0015 fills each
    peer's count from the rows its quarantine held."""
    engine = make_engine(database_url("upgrade"))
    try:
        upgrade_to(engine, "0014")
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO peer_state (peer, failures) VALUES ('th', 0), ('vn', 0)")
            )
            conn.execute(
                text(
                    "INSERT INTO quarantine (origin, received_at, code, message, item) "
                    "VALUES (:o, 1, 'stale_version', 'm', '{}')"
                ),
                [{"o": "th"}, {"o": "th"}, {"o": "my"}],
            )
        upgrade_to(engine, "head")
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT peer, rejected FROM peer_state")).all()
        counts = {str(peer): int(n) for peer, n in rows}
        assert counts == {"th": 2, "vn": 0}
    finally:
        engine.dispose()


def test_item_texts_are_shown_only_as_json(tmp_path: Path) -> None:
    runner = CliRunner(env={"CATTC_DEBUG": ""})
    result = runner.invoke(cli, ["sync", str(tmp_path), "quarantine", "--items"], prog_name="cattc")
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        "error: --items needs --json: an item's text is up to 100 KB"
    ]


async def test_what_a_member_sent_cannot_drive_the_operators_terminal(
    node_factory: NodeFactory,
) -> None:
    """A refused item's listing id is whatever the member wrote: the table shows its
    control characters and bidirectional overrides escaped, never as themselves."""
    hub = await node_factory("cn", is_hub=True)
    hostile = "vn-off-1\x1b[2J\x1b]0;owned\x07\u202egnp.exe\x9b\u200f\u2028x"
    item = {"type": "listing", "listing": {"id": hostile}}
    with Session(hub.runtime.engine) as session, session.begin():
        session.add(
            QuarantineRow(
                origin="vn",
                received_at=1,
                code="schema_invalid",
                message="bad \x1b[31mred\x1b[0m",
                item=json.dumps(item),
            )
        )
    text = await asyncio.to_thread(cattc, "sync", str(hub.data_dir), "quarantine")
    assert not any(c in text for c in "\x1b\x07\u202e\x9b\u200f\u2028")
    assert "vn-off-1\\u001b[2J\\u001b]0;owned\\u0007\\u202egnp.exe\\u009b" in text
    assert "\\u200f\\u2028x" in text  # a direction mark, a line separator
    assert "bad \\u001b[31mred\\u001b[0m" in text


async def test_an_item_nested_too_deep_to_parse_is_listed_without_its_listing(
    node_factory: NodeFactory,
) -> None:
    """A member's refused item may be JSON nested ten thousand deep: the list shows it
    with no listing named, and prints the others (the command failed on it: RecursionError)."""
    hub = await node_factory("cn", is_hub=True)
    nested = '{"listing": ' * 10_000 + "{}" + "}" * 10_000
    fine = json.dumps({"type": "listing", "listing": {"id": "vn-off-2"}})
    with Session(hub.runtime.engine) as session, session.begin():
        for at, item in enumerate((fine, nested)):
            session.add(
                QuarantineRow(
                    origin="vn", received_at=at, code="schema_invalid", message="x", item=item
                )
            )
    rows = json.loads(
        await asyncio.to_thread(cattc, "sync", str(hub.data_dir), "quarantine", "--json")
    )
    assert [r["listing_id"] for r in rows] == [None, "vn-off-2"]
