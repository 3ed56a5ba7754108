"""Which listings the hub holds now (``held_now``), and the key filter it and the matching
engine read summaries with (``refs_in``): the same rows as a row-value IN, found by
look-ups in the primary key, not by reading the whole table."""

from __future__ import annotations

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from node.hub.held_now import held_now
from node.storage.models import RemoteListingRow
from node.storage.ref_filter import refs_in
from tests.federation.network import NodeFactory

NOW = 1_800_000_000_000


def _row(origin: str, lid: str, expires: int) -> dict[str, object]:
    return {
        "origin": origin,
        "listing_id": lid,
        "category": "tech_offer",
        "version": 1,
        "item_ts": 1,
        "key_name": "ed25519:1",
        "policy_version": 1,
        "received_at": 1,
        "feed_seq": 1,
        "expires": expires,
        "visibility": None,
        "signed_bytes": "{}",
        "bytes_sha256": "0" * 64,
    }


async def test_refs_in_finds_the_rows_named_and_held_now_leaves_out_the_expired(
    node_factory: NodeFactory,
) -> None:
    hub = await node_factory("cn", is_hub=True, clock=lambda: NOW)
    rt = hub.runtime
    rows = [_row(o, f"{o}-off-{i:04d}", NOW + 1000) for o in ("th", "vn", "la") for i in range(300)]
    rows.append(_row("vn", "vn-old", NOW - 1))
    with Session(rt.engine) as session, session.begin():
        session.execute(insert(RemoteListingRow), rows)
    asked = [("th", "th-off-0007"), ("vn", "vn-off-0299"), ("la", "la-off-0000")]
    asked += [("vn", "vn-old"), ("th", "th-missing"), ("xx", "th-off-0007")]
    query = select(RemoteListingRow.origin, RemoteListingRow.listing_id).where(
        refs_in(RemoteListingRow.origin, RemoteListingRow.listing_id, asked)
    )
    with Session(rt.engine) as session:
        found = {(o, lid) for o, lid in session.execute(query)}
        assert (
            session.execute(
                select(RemoteListingRow.origin).where(
                    refs_in(RemoteListingRow.origin, RemoteListingRow.listing_id, [])
                )
            ).all()
            == []
        )
        if rt.engine.dialect.name == "sqlite":
            # The bug this filter fixed: a row-value IN list read every row of the table.
            compiled = query.compile(rt.engine, compile_kwargs={"literal_binds": True})
            plan = session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
            steps = " | ".join(str(step[-1]) for step in plan)
            assert "SCAN remote_listings" not in steps, steps
            assert (
                "SEARCH remote_listings USING COVERING INDEX sqlite_autoindex_remote_listings_1"
                in steps
            ), steps
    assert found == set(asked[:4])
    assert held_now(rt, asked) == set(asked[:3])  # vn-old has expired
