"""Shared pieces of the hub tests: the ``cattc`` CLI run beside nodes served in-process,
admin and public GETs, and direct reads and edits of what a node stores."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.cli.main import cli
from node.clock import Clock, system_clock
from node.storage.models import InboxRow
from tests.federation.network import Network, NodeFactory, add_member, hub_key, load_records
from tests.node.sample import sample_records
from tests.nodes import RunningNode


async def cattc(*args: str | Path) -> Result:
    """Run a ``cattc`` command in a worker thread: the command runs its own event loop
    (its HTTP calls), while this loop keeps serving the nodes it talks to."""

    def run() -> Result:
        return CliRunner().invoke(cli, [str(a) for a in args])

    return await asyncio.to_thread(run)


async def cattc_json(*args: str | Path) -> Any:
    """Run a command with ``--json`` that must succeed; return what it printed, parsed."""
    result = await cattc(*args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


async def get_json(
    http: aiohttp.ClientSession,
    url: str,
    *,
    token: str | None = None,
    params: Mapping[str, str | int] | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url, headers=headers, params=params) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()


async def start_hub_network(
    node_factory: NodeFactory,
    members: Sequence[str],
    *,
    hub_clock: Clock = system_clock,
    load_hub_sample: bool = True,
    **hub_config: Any,
) -> Network:
    """Like ``start_network``, but the hub alone may run on a clock the test moves (and
    with ``hub_config`` of its own)."""
    hub = await node_factory("cn", is_hub=True, clock=hub_clock, **hub_config)
    net = Network(hub)
    for node_id in members:
        node = await node_factory(node_id, hub_url=hub.url, hub_key=hub_key(hub), hub_id="cn")
        add_member(hub, node)
        net.nodes[node_id] = node
        load_records(node, sample_records(node_id))
    if load_hub_sample:
        load_records(hub, sample_records("cn"))
    return net


def inbox(node: RunningNode, kind: str) -> list[dict[str, Any]]:
    """The objects of type ``kind`` that ``node`` received from the hub, oldest first."""
    with Session(node.runtime.engine) as session:
        rows = session.scalars(
            select(InboxRow).where(InboxRow.type == kind).order_by(InboxRow.id)
        ).all()
        return [json.loads(r.obj) for r in rows]
