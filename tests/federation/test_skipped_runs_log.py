"""A job whose time comes while its last run still goes (a long first sync outlasting its
interval) is the scheduler's design here, not a warning: ``SkippedRuns`` logs it as INFO.
A job that a stop cancels is not an error either: ``CancelledByStop`` logs it as INFO,
without APScheduler's traceback."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from node.services.sync_manager import SKIPPED_RUN, quiet_scheduler_logs

SCHEDULER_LOG = "apscheduler.scheduler"
EXECUTOR_LOG = "apscheduler.executors.default"


async def _skip_once(caplog: pytest.LogCaptureFixture) -> None:
    """A real scheduler whose 50 ms job runs for 2 s: its next times are skipped."""
    release = asyncio.Event()

    async def long_pull() -> None:
        await release.wait()

    scheduler = AsyncIOScheduler(timezone=dt.UTC)
    scheduler.add_job(
        long_pull,
        IntervalTrigger(seconds=0.05, timezone=dt.UTC),
        max_instances=1,
        next_run_time=dt.datetime.now(dt.UTC),
    )
    scheduler.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not any(SKIPPED_RUN in r.getMessage() for r in caplog.records):
            assert asyncio.get_running_loop().time() < deadline, "no run was skipped"
            await asyncio.sleep(0.02)
    finally:
        release.set()
        scheduler.shutdown(wait=False)


async def test_a_skipped_run_is_info_not_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    quiet_scheduler_logs()
    quiet_scheduler_logs()  # installed once however often the node starts its scheduler
    assert len(logging.getLogger(SCHEDULER_LOG).filters) == 1
    caplog.set_level(logging.INFO, logger=SCHEDULER_LOG)
    await _skip_once(caplog)
    skipped = [r for r in caplog.records if SKIPPED_RUN in r.getMessage()]
    assert {r.levelname for r in skipped} == {"INFO"}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_skipped_run_is_not_logged_where_info_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_scheduler_logs()
    caplog.set_level(logging.DEBUG, logger=SCHEDULER_LOG)
    await _skip_once(caplog)  # at DEBUG, the skip is seen (as INFO)
    caplog.clear()
    caplog.set_level(logging.WARNING, logger=SCHEDULER_LOG)
    record = logging.LogRecord(
        SCHEDULER_LOG,
        logging.WARNING,
        __file__,
        1,
        f'Execution of job "x" skipped: {SKIPPED_RUN} (1)',
        None,
        None,
    )
    logging.getLogger(SCHEDULER_LOG).handle(record)
    assert not caplog.records
    other = logging.LogRecord(
        SCHEDULER_LOG,
        logging.WARNING,
        __file__,
        1,
        "Run time of job was missed by 0:00:01",
        None,
        None,
    )
    logging.getLogger(SCHEDULER_LOG).handle(other)
    assert [r.levelname for r in caplog.records] == ["WARNING"]


async def test_a_job_cancelled_by_a_stop_is_info_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What a stop does to a job in flight (a real scheduler, a job that does not catch
    the cancellation, as one cancelled before it began cannot): INFO, no traceback."""
    quiet_scheduler_logs()
    executor_log = EXECUTOR_LOG
    assert len(logging.getLogger(executor_log).filters) == 2  # and RoutineRuns
    caplog.set_level(logging.INFO, logger=executor_log)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    scheduler = AsyncIOScheduler(timezone=dt.UTC)
    scheduler.add_job(hang, id="hang", next_run_time=dt.datetime.now(dt.UTC))
    scheduler.start()
    await asyncio.wait_for(started.wait(), 10)
    jobs = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    scheduler.shutdown(wait=False)
    for task in jobs:
        task.cancel()
    await asyncio.gather(*jobs, return_exceptions=True)
    deadline = asyncio.get_running_loop().time() + 10
    while not any("cancelled by the node's stop" in r.getMessage() for r in caplog.records):
        assert asyncio.get_running_loop().time() < deadline, caplog.text
        await asyncio.sleep(0.01)
    ended = [r for r in caplog.records if "hang" in r.getMessage()]
    assert ended and {r.levelname for r in ended} == {"INFO"}
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_routine_run_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    """A real scheduler running a quick job every 20 ms (the node's pre-signing pass runs
    every 2 s): at INFO nothing of it is logged; at DEBUG, its runs are."""
    quiet_scheduler_logs()
    runs = 0

    async def presign() -> None:
        nonlocal runs
        runs += 1

    async def run_a_while() -> None:
        scheduler = AsyncIOScheduler(timezone=dt.UTC)
        scheduler.add_job(presign, IntervalTrigger(seconds=0.02, timezone=dt.UTC))
        scheduler.start()
        deadline, target = asyncio.get_running_loop().time() + 10, runs + 5
        try:
            while runs < target:
                assert asyncio.get_running_loop().time() < deadline, "the job did not run"
                await asyncio.sleep(0.01)
        finally:
            scheduler.shutdown(wait=False)

    caplog.set_level(logging.INFO, logger=EXECUTOR_LOG)
    await run_a_while()
    assert not [r for r in caplog.records if r.name == EXECUTOR_LOG], caplog.text
    caplog.set_level(logging.DEBUG, logger=EXECUTOR_LOG)
    await run_a_while()
    seen = [r for r in caplog.records if r.name == EXECUTOR_LOG]
    assert any("executed successfully" in r.getMessage() for r in seen)
    assert {r.levelname for r in seen} == {"DEBUG"}
