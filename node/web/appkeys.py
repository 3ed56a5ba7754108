"""Typed application keys: all state an app holds, declared in one place."""

from __future__ import annotations

from aiohttp import web

from node.clock import Clock
from node.hub.notices import MatchingService
from node.runtime import NodeRuntime
from node.services.sync_manager import SyncManager

RUNTIME = web.AppKey("runtime", NodeRuntime)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
SYNC = web.AppKey("sync", SyncManager)
MATCHING = web.AppKey("matching", MatchingService)
