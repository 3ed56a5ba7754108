"""Telling readers early that something changed (``POST /federation/v1/notify``).

Watches this node's change-log head and policy version (so changes made by another
process, e.g. ``cattc import``, count too) and, once they have been still for the
debounce time (or changing for ``max_delay_s``: a stream of edits does not hold the
notify back), sends a signed notify to every node that reads this node's feed.

Each reader is notified on its own: a reader slow to answer (or gone) delays nobody
else's notify, and never more than ``timeout_s``. A change while a reader's notify is
still in flight sends it one more right after, so the last change is always told.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import Engine, func, select

from node.services.peers import pull_targets
from node.storage.models import ChangeRow, PolicyVersionRow
from sync.client import PeerClient, PeerError

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

logger = logging.getLogger(__name__)
# The change-log head and the active policy version in one statement on one connection:
# the notifier reads them ten times a second, for ever (two ORM sessions, the second
# loading the policy's text, cost ten times as much).
_STATE = select(
    select(func.max(ChangeRow.seq)).scalar_subquery(),
    select(func.max(PolicyVersionRow.version))
    .where(PolicyVersionRow.active.is_(True))
    .scalar_subquery(),
)


def change_state(engine: Engine) -> tuple[int, int]:
    """(change-log head, active policy version; 0 for none)."""
    with engine.connect() as conn:
        head, version = conn.execute(_STATE).one()
    return int(head or 0), int(version or 0)


class Notifier:
    def __init__(
        self,
        rt: NodeRuntime,
        client: PeerClient,
        *,
        poll_s: float = 0.1,
        debounce_s: float = 0.2,
        max_delay_s: float = 0.5,
        timeout_s: float = 5.0,
    ) -> None:
        """``poll_s``: how often the head is read; ``debounce_s``: how long it must hold
        still; ``max_delay_s``: the longest a change waits for that; ``timeout_s``: the
        longest one reader's notify may take."""
        self.rt = rt
        self.client = client
        self.poll_s = poll_s
        self.debounce_s = debounce_s
        self.max_delay_s = max_delay_s
        self.timeout_s = timeout_s
        self.sent = 0  # notifies a reader accepted (202)
        self.rounds = 0  # times the readers were notified of a change
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()

    def _state(self) -> tuple[int, int]:
        return change_state(self.rt.engine)

    async def run(self) -> None:
        """Until cancelled (the node stops, or loses its leadership): the readers'
        notifies in flight are cancelled with it."""
        loop = asyncio.get_running_loop()
        try:
            last_notified = await self.rt.run(self._state)
            while True:
                await asyncio.sleep(self.poll_s)
                state = await self.rt.run(self._state)
                if state == last_notified:
                    continue
                due = loop.time() + self.max_delay_s
                while loop.time() < due:  # debounce: until it holds still, or at most due
                    await asyncio.sleep(min(self.debounce_s, max(0.0, due - loop.time())))
                    newer = await self.rt.run(self._state)
                    if newer == state:
                        break
                    state = newer
                last_notified = state
                await self.notify_all(wait=False)
        finally:
            await self.aclose()

    async def notify_all(self, *, wait: bool = True) -> int:
        """Notify every reader of this node's feed (each in a task of its own). With
        ``wait``, the number that accepted; without, 0 at once."""
        self.rounds += 1
        targets = await self.rt.run(pull_targets, self.rt)
        tasks = [self._send(p.node_id, p.base_url) for p in targets]
        if not wait:
            return 0
        before = self.sent
        await asyncio.gather(*tasks, return_exceptions=True)
        return self.sent - before

    def _send(self, node_id: str, base_url: str) -> asyncio.Task[None]:
        """The task notifying ``node_id``: a new one, or the one in flight, which then
        notifies once more when it ends (the reader learns of this change too)."""
        task = self._inflight.get(node_id)
        if task is not None and not task.done():
            self._again.add(node_id)
            return task
        task = asyncio.get_running_loop().create_task(self._notify_until_told(node_id, base_url))
        self._inflight[node_id] = task
        task.add_done_callback(lambda t: self._forget(node_id, t))
        return task

    def _forget(self, node_id: str, task: asyncio.Task[None]) -> None:
        if self._inflight.get(node_id) is task:
            del self._inflight[node_id]

    async def _notify_until_told(self, node_id: str, base_url: str) -> None:
        while True:
            self._again.discard(node_id)
            if await self._notify(node_id, base_url):
                self.sent += 1
            if node_id not in self._again:
                return

    async def _notify(self, node_id: str, base_url: str) -> bool:
        try:
            async with asyncio.timeout(self.timeout_s):
                resp = await self.client.request(
                    "POST", base_url, node_id, "/federation/v1/notify", body=b"{}"
                )
        except (PeerError, TimeoutError) as exc:
            logger.info("notify %s failed: %s", node_id, exc or "timed out")
            return False
        if resp.status != 202:
            logger.info("notify %s answered %s", node_id, resp.status)
        return resp.status == 202

    def in_flight(self) -> int:
        """Readers whose notify has not ended yet."""
        return sum(1 for task in self._inflight.values() if not task.done())

    async def aclose(self) -> None:
        """Cancel the notifies in flight and wait for them to end."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._again.clear()
