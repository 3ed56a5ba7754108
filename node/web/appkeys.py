"""Typed application keys: all state an app holds, declared in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry

from node.clock import Clock
from node.hub.loop_lag import LoopLagMonitor
from node.hub.search import SearchIndex
from node.runtime import NodeRuntime
from node.services.leader import Leadership
from node.services.sync_manager import SyncManager

if TYPE_CHECKING:
    from node.hub.app_setup import HubMatching

RUNTIME = web.AppKey("runtime", NodeRuntime)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
SYNC = web.AppKey("sync", SyncManager)
# The hub's public search cache and Prometheus registry: made at startup, before the app
# is frozen (state added to a running app is deprecated in aiohttp, an error under pytest).
SEARCH_INDEX = web.AppKey("search_index", SearchIndex)
METRICS = web.AppKey("metrics_registry", CollectorRegistry)
LOOP_LAG = web.AppKey("loop_lag", LoopLagMonitor)
# This process's bid for the node's leader lock (``node.services.leader``).
LEADER = web.AppKey("leader", Leadership)
# The hub's matcher as this process sees it (``node.hub.app_setup``).
HUB_MATCHING: web.AppKey[HubMatching] = web.AppKey("hub_matching")
