"""Running sync inside a node: one APScheduler job per peer, backoff, timeouts, notify.

The scheduler only decides *when*; ``sync.reader.FeedReader`` does the pulling. Each
peer has a lock so a scheduled run, a ``notify`` and ``cattc sync now`` never overlap.
A second job keeps the set of peers (and, on national nodes, the directory) current.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from node.hub.custody import HubRemoteStore
from node.services.directory import DirectoryRejected, keys_from_identity
from node.services.heap import trim_heap
from node.services.peer_lock import peer_lock
from node.services.peers import PeerInfo, PinnedKeys, peer_info, pinned_key, pull_targets
from node.services.remote_store import RemoteStore
from node.services.summary_cache import Presigner
from protocol.b64 import b64url_encode
from protocol.key_transition import follow_transitions
from protocol.keys import VerifyKeyInfo
from protocol.signing import SignatureError, verify_object
from sync.backoff import backoff_ms
from sync.client import PeerClient, PeerError, fetch_identity
from sync.interfaces import Changes, RunRecord, SyncObserver
from sync.reader import FeedReader, Peer
from sync.verify_pool import VerifyPool

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

logger = logging.getLogger(__name__)
SKIPPED_RUN = "maximum number of running instances reached"
ROUTINE_RUN = ('Running job "%s" (scheduled at %s)', 'Job "%s" executed successfully')
IDENTITY_REFETCH_MS = 60_000
MAX_PULLS = 4  # peers pulled at once: the rest wait their turn
# Runs that follow a run cut short by its time or page budget, before the peer waits for
# its next interval: at 120 s a run, 20 minutes of one peer's first sync at a stretch.
MAX_CONTINUED = 10
TRIM_AFTER_ITEMS = 5_000  # items applied, after which a caught-up pull trims the heap
PRESIGN_INTERVAL_S = 2.0
# Pulls asked for by a peer's notifies start at least this far apart (a first one at
# once): a member that sends notifies without pause gets a pull a second, not one each.
NOTIFY_SPACING_S = 1.0
# A request from an unknown origin refreshes the directory at most this often: any stranger
# can send one (every 10 s, a large directory's checks took a third of a core).
DIRECTORY_REFETCH_MS = 60_000


class SkippedRuns(logging.Filter):
    """APScheduler logs a WARNING when a job's time comes while its last run is still
    going. For the node's jobs that is the design: a long pull (a first sync) outlasts
    its interval and the next waits for it, as a pre-signing pass may. Such a line is
    logged as INFO, and only where INFO is logged at all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and SKIPPED_RUN in str(record.msg):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


class CancelledByStop(logging.Filter):
    """A stop cancels the scheduler's jobs in flight, and ``asyncio.run`` at the end
    cancels a job's task even before it began (then the job's own ``except
    CancelledError`` never runs): APScheduler logs either as an ERROR with a traceback,
    "Error running job". It is the designed end of the job, logged as INFO, without the
    traceback, and only where INFO is logged at all."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.levelno >= logging.ERROR and isinstance(error, asyncio.CancelledError):
            record.msg = f"{record.getMessage()}: cancelled by the node's stop"
            record.args = ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


class RoutineRuns(logging.Filter):
    """APScheduler logs each run of a job at INFO ("Running job", "executed
    successfully"): two lines every 2 s for the pre-signing pass alone, which buried
    what an operator reads the log for. They are DEBUG lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.msg in ROUTINE_RUN:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet_scheduler_logs() -> None:
    """Install ``SkippedRuns`` on APScheduler's scheduler logger, ``CancelledByStop``
    and ``RoutineRuns`` on its executor's (once)."""
    for name, kind in (
        ("apscheduler.scheduler", SkippedRuns),
        ("apscheduler.executors.default", CancelledByStop),
        ("apscheduler.executors.default", RoutineRuns),
    ):
        log = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in log.filters):
            log.addFilter(kind())


class NodeKeySource:
    def __init__(self, rt: NodeRuntime, session: aiohttp.ClientSession) -> None:
        self.rt = rt
        self.session = session
        self._last_fetch: dict[str, int] = {}

    def keys(self, peer: str) -> Mapping[str, VerifyKeyInfo]:
        info = peer_info(self.rt, peer)
        if info is None:
            return {}
        return PinnedKeys(info)

    async def refresh(self, peer: str) -> bool:
        """Refetch ``peer``'s identity (at most once a minute) and learn its new keys."""
        now = self.rt.clock()
        if now - self._last_fetch.get(peer, -IDENTITY_REFETCH_MS) < IDENTITY_REFETCH_MS:
            return False
        self._last_fetch[peer] = now
        cfg = self.rt.config
        pinned = pinned_key(cfg.hub_key) if peer == cfg.hub_id and not cfg.is_hub else None
        if pinned is not None:
            # The hub's keys never come from its self-signed document (whoever answers at
            # its URL could sign one): only from a chain of hand-overs from our pin.
            return await self.follow_hub_key(pinned) is not None
        info = await self.rt.run(peer_info, self.rt, peer)
        if info is None or not info.base_url:
            return False
        try:
            doc = await fetch_identity(self.session, info.base_url)
            if not isinstance(doc, dict) or doc.get("node_id") != peer:
                return False
            own = PinnedKeys(PeerInfo(peer, info.base_url, _identity_keys(doc)))
            verify_object(doc, peer, own)
        except (PeerError, SignatureError, KeyError, TypeError, ValueError) as exc:
            logger.warning("identity refetch of %s failed: %s", peer, exc)
            return False
        await self.rt.run(
            self.rt.directory.refresh_member_keys, peer, doc, bump=self.rt.config.is_hub
        )
        return True

    async def follow_hub_key(self, pinned: bytes) -> bytes | None:
        """The hub's current key if a chain of hand-overs from ``pinned`` leads to it (it
        is then pinned instead); None when there is none (a forged directory stays
        refused). The chain is read from the hub's identity document; each step must
        carry the signature of the key before it, so the document itself is not trusted."""
        cfg = self.rt.config
        try:
            doc = await fetch_identity(self.session, cfg.hub_url)
        except PeerError as exc:
            logger.warning("hub identity fetch failed: %s", exc)
            return None
        chain = doc.get("key_transitions") if isinstance(doc, dict) else None
        # Up to 100 statements, each checked against each key reached: off the loop.
        newer = await self.rt.run(follow_transitions, pinned, chain, cfg.hub_id)
        if newer == pinned:
            return None
        await self.rt.run(self.rt.repin_hub_key, newer)
        logger.warning(
            "the hub handed its signing key over: pinned %s instead of %s (node.toml updated)",
            b64url_encode(newer),
            b64url_encode(pinned),
        )
        return newer


def _identity_keys(doc: dict[str, Any]) -> dict[str, VerifyKeyInfo]:
    from node.services.directory import keys_from_json

    return keys_from_json(keys_from_identity(doc))


class SyncManager:
    def __init__(
        self,
        rt: NodeRuntime,
        session: aiohttp.ClientSession,
        *,
        run_timeout_s: float = 120.0,
        lock_wait_s: float = 0.0,
        on_lock_wait: Callable[[str], None] | None = None,
        max_pulls: int = MAX_PULLS,
        verify_workers: int | None = None,
    ) -> None:
        """``lock_wait_s``: how long a pull waits for another process's pull of the same
        peer to end (the server skips at once; ``cattc sync now`` waits, telling
        ``on_lock_wait(peer)`` so). ``max_pulls``: how many peers are pulled at once.
        ``verify_workers``: processes checking items (None: by the machine's cores)."""
        self.rt = rt
        self.session = session
        cfg = rt.config
        self.store = (
            HubRemoteStore(
                rt.engine,
                rt.node_id,
                lambda: rt.keys.active,
                rt.clock,
                max_per_origin=cfg.max_listings_per_member,
                max_quarantined=cfg.max_quarantine_per_member,
            )
            if cfg.is_hub
            else RemoteStore(
                rt.engine,
                max_per_origin=cfg.max_listings_per_member,
                max_quarantined=cfg.max_quarantine_per_member,
            )
        )
        self.client = PeerClient(session, rt.node_id, lambda: rt.keys.active, rt.clock)
        self.keys = NodeKeySource(rt, session)
        self.pool = VerifyPool(verify_workers)
        self.reader = FeedReader(
            rt.node_id,
            self.client,
            self.store,
            self.keys,
            blocking=rt.run,
            hub=rt.config.hub_id,
            pool=self.pool,
        )
        self._pull_slots = asyncio.Semaphore(max_pulls)
        self.pulling = 0  # pulls running now, and the most ever at once
        self.peak_pulls = 0
        self.presigner = Presigner(rt)
        self.run_timeout_s = run_timeout_s
        self.lock_wait_s = lock_wait_s
        self.on_lock_wait = on_lock_wait
        self.scheduler: AsyncIOScheduler | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._pending: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pulls: set[asyncio.Task[None]] = set()  # scheduled or asked-for pulls running
        self._asked: dict[str, asyncio.Task[None]] = {}  # per peer, a notify's pull to come
        self._asked_at: dict[str, float] = {}  # per peer, when the last such pull started
        self._observers: list[SyncObserver] = []
        self.untrimmed = 0  # items applied since the heap was last given back (trim_heap)
        self._last_directory = -DIRECTORY_REFETCH_MS

    def checking_in_workers(self) -> bool:
        """Whether a long pull (a first sync) has its signature checks running in the
        verify workers: they stop once the pulls have caught up."""
        return self.pool.running

    # -- observers --------------------------------------------------------------------
    def add_observer(self, observer: SyncObserver) -> None:
        """Tell ``observer`` what each pull changes (``SyncObserver.synced``)."""
        self._observers.append(observer)

    def remove_observer(self, observer: SyncObserver) -> None:
        self._observers.remove(observer)

    async def _tell(self, changes: Changes) -> None:
        """Each observer in turn when listings changed (one failing is logged; the others
        are still told)."""
        for observer in list(self._observers) if changes else []:
            try:
                await observer.synced(changes)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "sync observer %r failed on %s's changes", observer, changes.origin
                )

    # -- one run ----------------------------------------------------------------------
    async def sync_peer(self, peer_id: str, *, force: bool = False) -> RunRecord | None:
        info = await self.rt.run(peer_info, self.rt, peer_id)
        if info is None or not info.base_url or info.status == "suspended":
            return None  # a suspended member is not pulled, not even on request
        lock = self._locks.setdefault(peer_id, asyncio.Lock())
        if lock.locked() and not force:
            self._pending.add(peer_id)  # a notify during a run: pull again right after it
            return None
        changes = Changes(peer_id)  # of every run below, merged
        run = await self._sync_locked(peer_id, info, lock, changes, force=force)
        applied = run is not None and bool(run.applied or run.retracted)
        self.untrimmed += _items(run)
        continued = 0
        # Again at once when notified during the run, or when the run's time or pages ran
        # out with the feed still going (a long first sync), up to MAX_CONTINUED times in
        # all: a peer that notifies during every run does not keep it going for ever (its
        # next notify asks for a pull of its own, NOTIFY_SPACING_S after the last).
        while (
            run is not None and continued < MAX_CONTINUED and (peer_id in self._pending or run.more)
        ):
            continued += 1
            again = await self._sync_locked(peer_id, info, lock, changes, force=False)
            if again is None:
                break
            run = again
            applied = applied or bool(run.applied or run.retracted)
            self.untrimmed += _items(run)
        if peer_id in self._pending:  # notified during the last run allowed: asked again
            self._pending.discard(peer_id)
            self.trigger(peer_id)
        # Caught up, and no other pull running: the verify workers are not kept waiting
        # for the next long pull (a first sync is over; what follows is small pages).
        caught_up = run is not None and not run.more and run.error is None
        pool = self.reader.pool
        alone = not any(other.locked() for other in self._locks.values())
        if caught_up and pool is not None and alone:
            pool.release()
        # After the pull, outside its lock: a notify that comes while the hub re-matches
        # is pulled at once, not after the matching.
        if applied:
            await self._tell(changes)
        if caught_up and alone and self.untrimmed >= TRIM_AFTER_ITEMS:
            # The pages' parsed items are freed, but glibc keeps their pages: the server
            # of a hub that pulled 200,000 summaries stayed 40 MB larger (286 -> 244 MB
            # steady, bench.scale). Given back in a thread: a ctypes call drops the GIL.
            self.untrimmed = 0
            await asyncio.to_thread(trim_heap)
        return run

    async def _sync_locked(
        self, peer_id: str, info: PeerInfo, lock: asyncio.Lock, changes: Changes, *, force: bool
    ) -> RunRecord | None:
        async with lock:
            self._pending.discard(peer_id)
            if not force:
                state = await self.rt.run(self.store.peer_cursor, peer_id)
                wait = backoff_ms(state.failures)
                if state.last_attempt is not None and self.rt.clock() < state.last_attempt + wait:
                    self._run_at(peer_id, state.last_attempt + wait)  # not lost, only delayed
                    return None
            on_wait = self.on_lock_wait
            async with (
                self._pull_slots,
                peer_lock(
                    self.rt,
                    peer_id,
                    wait_s=self.lock_wait_s,
                    on_wait=None if on_wait is None else lambda: on_wait(peer_id),
                ) as mine,
            ):
                if not mine:
                    return None  # another process (server, hub worker, CLI) is pulling it
                self.pulling += 1
                self.peak_pulls = max(self.peak_pulls, self.pulling)
                try:
                    return await self.reader.pull(
                        Peer(peer_id, info.base_url),
                        timeout_s=self.run_timeout_s,
                        changes=changes,
                    )
                finally:
                    self.pulling -= 1

    async def sync_all(self, *, force: bool = True) -> list[RunRecord]:
        await self.refresh_directory()
        peers = [p.node_id for p in await self.rt.run(pull_targets, self.rt)]
        runs = await asyncio.gather(*(self.sync_peer(p, force=force) for p in peers))
        return [r for r in runs if r is not None]

    async def refresh_directory(self, *, rate_limited: bool = False) -> bool:
        """Fetch the hub's directory and keep it if newer; True if it changed."""
        cfg = self.rt.config
        if cfg.is_hub or not cfg.hub_url or not cfg.hub_key:
            return False
        now = self.rt.clock()
        if rate_limited and now - self._last_directory < DIRECTORY_REFETCH_MS:
            return False
        self._last_directory = now
        pinned = pinned_key(cfg.hub_key)
        if pinned is None:
            return False
        try:
            doc = await self.client.get_json(cfg.hub_url, cfg.hub_id, "/federation/v1/directory")
        except PeerError as exc:
            logger.warning("directory refresh failed: %s", exc)
            return False
        for _ in range(2):  # once more if the hub handed its key over to a new one
            try:
                return await self.rt.run(
                    self.rt.directory.accept, doc, hub_id=cfg.hub_id, hub_key=pinned
                )
            except DirectoryRejected as exc:
                refused = exc
            newer = await self.keys.follow_hub_key(pinned)
            if newer is None:
                break
            pinned = newer
        logger.warning("directory refresh failed: %s", refused)
        return False

    # -- schedule ---------------------------------------------------------------------
    def start(self) -> None:
        quiet_scheduler_logs()
        cfg = self.rt.config
        # Every job: missed runs merged into one, and a job whose time came while the loop
        # was busy (a hub loading its matcher, a machine under load) runs late, once.
        # APScheduler's default drops a run more than a second late, which left a node that
        # started busy without its first directory reconcile, hence without any pull, for a
        # whole interval.
        self.scheduler = AsyncIOScheduler(
            timezone=dt.UTC, job_defaults={"misfire_grace_time": None, "coalesce": True}
        )
        self.scheduler.add_job(
            self._reconcile,
            IntervalTrigger(seconds=cfg.sync_interval_seconds, timezone=dt.UTC),
            id="reconcile",
            max_instances=1,
            next_run_time=dt.datetime.now(dt.UTC),
        )
        self.scheduler.add_job(
            self._presign,
            IntervalTrigger(seconds=PRESIGN_INTERVAL_S, timezone=dt.UTC),
            id="presign",
            max_instances=1,
            next_run_time=dt.datetime.now(dt.UTC),
        )
        self.scheduler.start()

    async def _presign(self) -> None:
        """The scheduler's pre-signing pass (``summary_cache.Presigner``): signs what
        changed since the last one, off the event loop, a small transaction at a time."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self.presigner.run(self.rt.run)
        except asyncio.CancelledError:
            logger.info("pre-signing stopped by shutdown")
        except Exception:  # the next pass tries again; pages sign what is missing
            logger.exception("pre-signing summaries failed")
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _reconcile(self) -> None:
        try:
            await self._reconcile_peers()
        except asyncio.CancelledError:  # the node stopped meanwhile (a stop just after start)
            logger.info("directory reconcile stopped by shutdown")

    async def _reconcile_peers(self) -> None:
        await self.refresh_directory()
        if self.scheduler is None:  # the node began stopping while the directory came in
            return
        wanted = {p.node_id for p in await self.rt.run(pull_targets, self.rt)}
        if self.scheduler is None:
            return
        have = {
            j.id.removeprefix("pull:")
            for j in self.scheduler.get_jobs()
            if j.id.startswith("pull:")
        }
        cfg = self.rt.config
        for peer in sorted(wanted - have):
            self.scheduler.add_job(
                self._scheduled_pull,
                IntervalTrigger(
                    seconds=cfg.sync_interval_seconds,
                    jitter=cfg.sync_jitter_seconds or None,
                    timezone=dt.UTC,
                ),
                args=[peer],
                id=f"pull:{peer}",
                max_instances=1,
                next_run_time=dt.datetime.now(dt.UTC),
            )
        for peer in have - wanted:
            self.scheduler.remove_job(f"pull:{peer}")

    async def _scheduled_pull(self, peer_id: str) -> None:
        """The scheduler's job. Shutting down cancels a pull in flight, which is no error
        (the cursor only moves with a page's items): not worth the traceback the
        scheduler would log for it."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # so that closing the node stops it and waits for it
            self._pulls.add(task)
        try:
            await self.sync_peer(peer_id)
        except asyncio.CancelledError:
            logger.info("pull of %s stopped by shutdown", peer_id)
        except Exception as exc:  # the database away: the next run tries again
            logger.warning("pull of %s failed: %s: %s", peer_id, type(exc).__name__, exc)
        finally:
            if task is not None:
                self._tasks.discard(task)
                self._pulls.discard(task)

    def busy(self) -> bool:
        """Whether a scheduled or asked-for pull (with what its observers do after it)
        is running now."""
        return bool(self._pulls) or self.pulling > 0

    def _run_at(self, peer_id: str, when_ms: int) -> None:
        """Bring ``peer_id``'s next scheduled pull forward to ``when_ms`` (never later)."""
        job = self.scheduler.get_job(f"pull:{peer_id}") if self.scheduler else None
        when = dt.datetime.fromtimestamp(when_ms / 1000, dt.UTC)
        if job is not None and (job.next_run_time is None or when < job.next_run_time):
            job.modify(next_run_time=when)

    def trigger(self, peer_id: str) -> bool:
        """Pull ``peer_id`` now (an early pull asked for by its notify).

        Not through the peer's scheduled job: the scheduler skips a job whose previous
        run is still going (a pull, or the hub's re-matching after it). A pull of its
        own either starts at once or, if one is in flight, makes that one pull again
        as soon as it ends. Notifies come to one pull a ``NOTIFY_SPACING_S`` at most: one
        that comes sooner after the last is folded into a pull at the end of the spacing
        (and every further one into that)."""
        if self.scheduler is None or self.scheduler.get_job(f"pull:{peer_id}") is None:
            return False
        if peer_id in self._asked:
            return True
        loop = asyncio.get_running_loop()
        wait = self._asked_at.get(peer_id, -NOTIFY_SPACING_S) + NOTIFY_SPACING_S - loop.time()
        task = loop.create_task(self._asked_pull(peer_id, max(0.0, wait)))
        self._asked[peer_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: self._forget_asked(peer_id, t))
        return True

    def _forget_asked(self, peer_id: str, task: asyncio.Task[None]) -> None:
        if self._asked.get(peer_id) is task:
            del self._asked[peer_id]

    async def _asked_pull(self, peer_id: str, wait_s: float) -> None:
        if wait_s:
            await asyncio.sleep(wait_s)
        task = asyncio.current_task()
        if task is not None:
            self._forget_asked(peer_id, task)  # a notify from now on asks for the next pull
        self._asked_at[peer_id] = asyncio.get_running_loop().time()
        await self._scheduled_pull(peer_id)

    def stop(self) -> None:
        """Stop scheduling, and cancel the pulls in flight (see :meth:`aclose`)."""
        for task in self._tasks:
            task.cancel()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None

    async def aclose(self) -> None:
        """:meth:`stop`, then wait until the cancelled pulls have ended (each records
        its run), so that the node's database can be closed after it."""
        running = list(self._tasks)
        self.stop()
        await asyncio.gather(*running, return_exceptions=True)
        await asyncio.to_thread(self.pool.close)


def _items(run: RunRecord | None) -> int:
    """Items a run applied or retracted (0 for a run that did not happen)."""
    return 0 if run is None else run.applied + run.retracted
