"""The admin listing filter ``q`` matches its text literally: ``%`` and ``_`` are not LIKE
wildcards (and ``\\`` is not an escape), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from urllib.parse import quote

import aiohttp

from tests.federation.network import NodeFactory, load_records
from tests.node.sample import sample_records
from tests.nodes import RunningNode


async def _ids(http: aiohttp.ClientSession, node: RunningNode, q: str) -> set[str]:
    status, page = await node.admin(http, "GET", f"/admin/v1/listings?q={quote(q)}")
    assert status == 200, page
    return {item["listing"]["id"] for item in page["items"]}


async def test_q_wildcards_match_literally(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("vn")
    records = sample_records("vn")[:4]
    titles = ["Solar dryer, 100% off-grid", "Solar_dryer kit", "Solar dryer\\mk2", "Solar dryer"]
    for record, title in zip(records, titles, strict=True):
        record["title"] = dict(record["title"], en=title)
    load_records(node, records)
    ids = [r["id"] for r in records]

    assert await _ids(http, node, "%") == {ids[0]}
    assert await _ids(http, node, "100%") == {ids[0]}
    assert await _ids(http, node, "_") == {ids[1]}
    assert await _ids(http, node, "solar_dryer") == {ids[1]}
    assert await _ids(http, node, "solar%dryer") == set()
    assert await _ids(http, node, "\\") == {ids[2]}
    assert await _ids(http, node, "dryer\\mk") == {ids[2]}
    assert await _ids(http, node, "solar dryer") == {ids[0], ids[2], ids[3]}
