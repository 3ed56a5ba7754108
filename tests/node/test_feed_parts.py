"""The feed and its summaries get the node's parts they use (``NodeParts``), not the
runtime: ``node.runtime`` composes ``FeedService`` and nothing in the feed imports the
runtime back (not even for types)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

import node.services.feed
import node.services.feed_items
import node.services.summary_cache
from node.clock import Clock
from node.config import NodeConfig
from node.services.parts import NodeParts
from node.services.policy import PolicyService
from protocol.keys import KeyStore
from tests.federation.network import NodeFactory, load_records
from tests.node.sample import sample_records


@dataclass(frozen=True)
class Parts:
    """Only what ``NodeParts`` names, nothing else of the runtime."""

    node_id: str
    engine: Engine
    config: NodeConfig
    keys: KeyStore
    policy: PolicyService
    clock: Clock


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for stmt in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(stmt, ast.ImportFrom) and stmt.module:
            names.add(stmt.module)
        elif isinstance(stmt, ast.Import):
            names.update(alias.name for alias in stmt.names)
    return names


def test_the_feed_does_not_import_the_runtime() -> None:
    for module in (node.services.feed, node.services.feed_items, node.services.summary_cache):
        assert module.__file__ is not None
        names = imported(Path(module.__file__))
        assert "node.runtime" not in names, module.__name__
        assert "node.services.parts" in names, module.__name__


async def test_a_feed_made_of_parts_serves_the_runtimes_page(node_factory: NodeFactory) -> None:
    vn = await node_factory("vn")
    load_records(vn, sample_records("vn"))
    rt = vn.runtime

    parts: NodeParts = Parts(rt.node_id, rt.engine, rt.config, rt.keys, rt.policy, rt.clock)
    feed = node.services.feed.FeedService(parts)
    made, served = feed.page("cn", None, 100), rt.feed.page("cn", None, 100)
    for page in (made, served):  # signed at two moments: the rest is the same
        del page["ts"], page["signatures"]
    assert made == served and made["type"] == "feed_page" and made["items"]
