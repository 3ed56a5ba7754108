"""Helpers for the sync fault tests: drive rounds, compare what the hub holds with what
the owner allows, poll with a deadline, and change an owner's listings."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.storage.models import QuarantineRow, SyncRunRow
from sync.interfaces import RunRecord
from tests.federation.network import Network, allowed_for, held_by
from tests.nodes import RunningNode

OWNER = "vn"


def assert_hub_holds_allowed(net: Network, owner: str = OWNER) -> None:
    expected = allowed_for(net.node(owner), net.hub.node_id)
    held = held_by(net.hub, owner)
    assert sorted(held) == sorted(expected)
    for lid, view in expected.items():
        assert held[lid] == view, lid


async def sync_round(net: Network, owner: str = OWNER) -> RunRecord:
    run = await net.hub.sync.sync_peer(owner, force=True)
    assert run is not None
    return run


async def sync_until_clean(net: Network, owner: str = OWNER, rounds: int = 5) -> list[RunRecord]:
    runs: list[RunRecord] = []
    for _ in range(rounds):
        runs.append(await sync_round(net, owner))
        if runs[-1].error is None:
            return runs
    pytest.fail(f"no clean round in {rounds}: {[r.error for r in runs]}")


async def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s:g} s")
        await asyncio.sleep(0.02)


def hub_cursor(net: Network, owner: str = OWNER) -> str | None:
    return net.hub.sync.store.peer_cursor(owner).cursor


def item_ids(page: dict[str, Any]) -> list[str]:
    return [
        i["listing"]["id"] if i["type"] == "listing" else i["listing_id"] for i in page["items"]
    ]


def retitle(node: RunningNode, listing_id: str, suffix: str) -> None:
    record = copy.deepcopy(node.runtime.listings.get(listing_id).record)
    record["title"]["en"] += suffix
    node.runtime.listings.update(listing_id, record)


def set_visibility(node: RunningNode, listing_id: str, visibility: str) -> None:
    record = copy.deepcopy(node.runtime.listings.get(listing_id).record)
    record["visibility"] = visibility
    node.runtime.listings.update(listing_id, record)


def new_listing_like(node: RunningNode, listing_id: str, title: str) -> str:
    record = copy.deepcopy(node.runtime.listings.get(listing_id).record)
    for key in ("id", "version", "created", "updated"):
        record.pop(key)
    record["title"] = {"en": title}
    return str(node.runtime.listings.create(record)["id"])


def sync_runs(node: RunningNode) -> list[SyncRunRow]:
    with Session(node.runtime.engine) as session:
        rows = list(session.scalars(select(SyncRunRow).order_by(SyncRunRow.id)))
        session.expunge_all()
        return rows


def quarantined(node: RunningNode, origin: str) -> list[QuarantineRow]:
    with Session(node.runtime.engine) as session:
        rows = list(session.scalars(select(QuarantineRow).where(QuarantineRow.origin == origin)))
        session.expunge_all()
        return rows
