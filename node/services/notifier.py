"""Telling readers early that something changed (``POST /federation/v1/notify``).

Watches this node's change-log head and policy version (so changes made by another
process, e.g. ``cattc import``, count too) and, once they have been still for the
debounce time, sends a signed notify to every node that reads this node's feed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from node.services.peers import pull_targets
from sync.client import PeerClient, PeerError

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

logger = logging.getLogger(__name__)


class Notifier:
    def __init__(
        self, rt: NodeRuntime, client: PeerClient, *, poll_s: float = 0.2, debounce_s: float = 0.3
    ) -> None:
        self.rt = rt
        self.client = client
        self.poll_s = poll_s
        self.debounce_s = debounce_s
        self.sent = 0

    def _state(self) -> tuple[int, int]:
        current = self.rt.policy.active_or_none()
        return self.rt.listings.head(), current.version if current else 0

    async def run(self) -> None:
        last_notified = await self.rt.run(self._state)
        while True:
            await asyncio.sleep(self.poll_s)
            state = await self.rt.run(self._state)
            if state == last_notified:
                continue
            while True:  # debounce: wait until the state holds still
                await asyncio.sleep(self.debounce_s)
                newer = await self.rt.run(self._state)
                if newer == state:
                    break
                state = newer
            last_notified = state
            await self.notify_all()

    async def notify_all(self) -> int:
        targets = await self.rt.run(pull_targets, self.rt)
        results = await asyncio.gather(
            *(self._notify(p.node_id, p.base_url) for p in targets), return_exceptions=True
        )
        ok = sum(1 for r in results if r is True)
        self.sent += ok
        return ok

    async def _notify(self, node_id: str, base_url: str) -> bool:
        try:
            resp = await self.client.request(
                "POST", base_url, node_id, "/federation/v1/notify", body=b"{}"
            )
        except PeerError as exc:
            logger.info("notify %s failed: %s", node_id, exc)
            return False
        return resp.status == 202
