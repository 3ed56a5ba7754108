"""A node whose event loop is busy when its schedule starts (a hub loading its matcher, a
machine under load) still runs the jobs that came due meanwhile, late and once, instead of
APScheduler's default of dropping a run more than a second late: a hub started busy used
to skip its first directory reconcile, and so pulled no member for a whole interval."""

from __future__ import annotations

import time

from tests.federation.network import NodeFactory
from tests.federation.test_withdraw_notify import HOUR_S, federation, poll, runs_of

BUSY_S = 2.0  # the loop held up this long after the scheduler starts: twice the old grace


async def test_a_hub_busy_when_its_schedule_starts_still_pulls_its_members(
    node_factory: NodeFactory,
) -> None:
    hub, _ = await federation(node_factory, notifiers=False)  # starts the hub's scheduler
    assert hub.sync.scheduler is not None
    assert hub.sync.scheduler.get_job("reconcile").trigger.interval.total_seconds() == HOUR_S
    time.sleep(BUSY_S)  # noqa: ASYNC251 - the loop busy, on purpose: the jobs due now run late

    async def pulled() -> dict[str, int] | None:
        runs = {peer: runs_of(hub, peer) for peer in ("th", "vn")}
        return runs if all(runs.values()) else None

    runs = await poll(pulled, 30, "the hub's first pulls of th and vn")
    assert runs == {"th": 1, "vn": 1}  # once each, the next an hour away
