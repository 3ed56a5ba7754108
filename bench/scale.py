"""Fifty members, for real (issue: the hub at 100x): a hub and ``CATTC_SCALE_MEMBERS``
member nodes, each a ``cattc serve`` process holding ``CATTC_SCALE_LISTINGS`` listings.

It reports: the time to the first full sync (the hub holds every member's summaries);
the hub's RSS, steady and peak, of its whole process tree (the server, its matching
worker, verify pool and resource tracker: their RSS summed) and of the server process alone
(sampled from /proc every 0.5 s); public search p50/p99 with 20 concurrent clients during
the sync and after it (while the hub re-matches); the hub's event-loop lag p99 as the hub
reports it (``/hub/status`` ``event_loop_lag``, over its last minute: during the sync, the
worst of the minutes polled every 2 s); the hub's CPU share in steady state with 10
changes per member per sync interval; and the seconds from a withdrawal at a member to the
listing's absence from public search, and from search and the match lists. Each member
has the hub as its reader (``hub_url``), so its notifier tells the hub of the withdrawal
as a real member's would; the hub's scheduled pulls are a sync interval apart.

The full run is 50 x 20,000 (1M summaries); ``CATTC_SCALE_MEMBERS=4
CATTC_SCALE_LISTINGS=50000`` is the quicker comparison. ``CATTC_SCALE_DATABASE`` set to a
PostgreSQL URL puts the hub on PostgreSQL (a schema of its own); members stay on SQLite.
Everything runs on this machine's cores: members, hub and clients share them, so the
figures carry that load. ``CATTC_SCALE_MEMBER_NICE=10`` starts the members at that lower
CPU priority, nearer a deployment where they run on servers of their own; the clients and
the hub keep theirs. ``CATTC_SCALE_MEMBER_PULLS=hub`` makes the members read only the
hub's feed (``pull_members = false``), not each other's: at 50 members on two cores their
2,450 pulls of one another saturated the machine (load average 100) and the hub's pulls
timed out. The hub matches lexically unless ``CATTC_BENCH_SEMANTIC`` names a
model (``e5``: the hub's default), as the rows' labels then say: it encodes in the
background, and its vectors are held for every listing from the first one encoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import statistics
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import BenchResult
from bench.harness import postgres_schema
from bench.sync_pull import HUB_KEY, HUB_SEED, SHARE_ALL, _free_port, _records, _serve, _stop
from node.config import NodeConfig
from node.demo import PUBLIC_RULES
from node.hub.match_worker import PROCESS_NAME
from node.runtime import open_runtime
from node.services.directory import Member, keys_from_identity
from node.services.setup import init_node

MEMBERS = int(os.environ.get("CATTC_SCALE_MEMBERS", "50"))
LISTINGS = int(os.environ.get("CATTC_SCALE_LISTINGS", "20000"))
DATABASE = os.environ.get("CATTC_SCALE_DATABASE", "")
INTERVAL_S = float(os.environ.get("CATTC_SCALE_INTERVAL", "30"))
SYNC_DEADLINE_S = float(os.environ.get("CATTC_SCALE_DEADLINE", "7200"))
# The members at a lower CPU priority (``nice``): in a deployment they run on their own
# servers, so that the hub's figures here carry less of their load.
MEMBER_NICE = int(os.environ.get("CATTC_SCALE_MEMBER_NICE", "0"))
CLIENTS = 20
MODEL = os.environ.get("CATTC_BENCH_SEMANTIC", "off")  # the hub's matching model (harness)
# Whether the members read each other's feeds as well as the hub's (``pull_members``). In a
# deployment each does so from its own server; here 50 members pulling from 49 others each
# (2,450 pulls a sync interval, the first ones scanning 20,000 changes for nothing, since
# the bench's members share with the hub only) are load on the hub's two cores.
MEMBER_PULLS = os.environ.get("CATTC_SCALE_MEMBER_PULLS", "all")  # "all" or "hub"
SMALL_HUB = 200_000  # summaries up to which the goal is RSS < 800 MB
# Each configuration its own section of docs/benchmarks.md: the quick run, the full one
# and the hub on PostgreSQL stand side by side.
TITLE = "Fifty members, for real (issue: the hub at 100x): {} x {:,} listings{}".format(
    MEMBERS,
    LISTINGS,
    (", the hub on PostgreSQL" if DATABASE else "")
    + (f", members at nice {MEMBER_NICE}" if MEMBER_NICE else "")
    + (", members reading only the hub" if MEMBER_PULLS == "hub" else "")
    + (f", semantic matching ({MODEL})" if MODEL != "off" else ""),
)
QUERIES = ["solar", "rice", "water treatment", "sensor", "", "drying", "vaccine", "battery"]


def _rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _pss_mb(pid: int) -> float:
    """Proportional set size: each page shared by n processes counts 1/n in each (the
    processes share the pages of the modules and libraries they both map)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _label(pid: int, root: int, parents: dict[int, int]) -> str:
    """What a process of the hub's tree is: the server, the matching worker (by the name
    it gives itself), a verify worker (spawned: ``multiprocessing.spawn``) or
    multiprocessing's resource tracker."""
    if pid == root:
        return "server"
    name = ""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as fh:
        name = fh.read().strip()
    if name == PROCESS_NAME:
        return "matching worker"
    cmdline = ""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as fh:
        cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
    if "forkserver" in cmdline:  # a hub of older code
        return "forkserver" if parents.get(pid) == root else "matching worker"
    if "resource_tracker" in cmdline:
        return "resource tracker"
    return "verify worker" if "spawn" in cmdline else "other"


def _parents(pids: list[int]) -> dict[int, int]:
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{pid}/stat") as fh:
                out[pid] = int(fh.read().rsplit(")", 1)[1].split()[1])
    return out


def _tree(pid: int) -> list[int]:
    """``pid`` and every process descended from it (the hub's matching worker, its verify
    pool's workers, multiprocessing's resource tracker), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """The hub's memory every half second, in MB: the RSS of its whole process tree (the
    server, its matching worker, verify pool and resource tracker; summed, so a page they share
    counts once per process), the tree's PSS (a shared page counted once in all), and the
    RSS of the server process alone."""

    TREE, PROCESS, PSS = 1, 2, 3

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, float, float, float]] = []  # time, TREE, PROCESS, PSS
        self.most_processes = 0
        self.at_peak = ""  # each process's RSS at the tree's peak
        self.peak_at = 0.0  # when the tree's peak was sampled (time.monotonic)
        self.parts: list[dict[str, float]] = []  # each sample's RSS by kind of process
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            pids = _tree(self.pid)
            self.most_processes = max(self.most_processes, len(pids))
            each = {pid: _rss_mb(pid) for pid in pids}
            tree = sum(each.values())
            pss = sum(_pss_mb(pid) for pid in pids)
            parents = _parents(pids)
            parts: dict[str, float] = {}
            for pid, mb in each.items():
                label = _label(pid, self.pid, parents)
                parts[label] = parts.get(label, 0.0) + mb
            if tree > self.peak():
                self.peak_at = time.monotonic()
                self.at_peak = ", ".join(
                    f"{_label(pid, self.pid, parents)} {mb:.0f}"
                    for pid, mb in sorted(each.items(), key=lambda x: -x[1])
                )
            self.samples.append((time.monotonic(), tree, each.get(self.pid, 0.0), pss))
            self.parts.append(parts)

    def steady_parts(self, since: float) -> str:
        """The median RSS of each kind of process over the samples since ``since``."""
        picked = [p for s, p in zip(self.samples, self.parts, strict=True) if s[0] >= since]
        labels = sorted({label for p in picked for label in p})
        medians = {label: statistics.median(p.get(label, 0.0) for p in picked) for label in labels}
        return ", ".join(
            f"{label} {mb:.0f}" for label, mb in sorted(medians.items(), key=lambda x: -x[1])
        )

    def peak(self, since: float = 0.0, *, of: int = TREE) -> float:
        return max((s[of] for s in self.samples if s[0] >= since), default=0.0)

    def steady(self, since: float, *, of: int = TREE) -> float:
        values = [s[of] for s in self.samples if s[0] >= since]
        return statistics.median(values) if values else 0.0


def _get(url: str, token: str | None = None, timeout: float = 30) -> Any:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def _send(url: str, token: str, method: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _wait(check: Any, deadline_s: float, every_s: float = 0.5) -> float:
    """Seconds until ``check()`` is true; raises after ``deadline_s``."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        with contextlib.suppress(OSError, ValueError):
            if check():
                return time.monotonic() - start
        time.sleep(every_s)
    raise TimeoutError(f"not reached within {deadline_s:.0f} s")


def _member(root: Path, index: int, hub_url: str) -> dict[str, Any]:
    node_id = f"m{index:02d}"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir = root / node_id
    result = init_node(
        data_dir,
        NodeConfig(
            node_id=node_id,
            country=random.Random(index).choice(["TH", "VN", "LA", "KH", "MM", "ID", "MY", "PH"]),
            port=port,
            base_url=url,
            sync_interval_seconds=INTERVAL_S,
            max_page_size=1000,
            hub_id="cn",
            hub_key=HUB_KEY,
            hub_url=hub_url,
            pull_members=MEMBER_PULLS != "hub",
        ),
    )
    rt = open_runtime(data_dir)
    try:
        report = rt.listings.import_records(_records(LISTINGS, node_id))
        assert report.created == LISTINGS, report.problems[:3]
        rt.policy.apply(SHARE_ALL + PUBLIC_RULES, "bench")
        identity = rt.identity()
    finally:
        rt.close()
    return {
        "id": node_id,
        "dir": data_dir,
        "url": url,
        "token": result.admin_token,
        "identity": identity,
    }


def _hub_database() -> contextlib.AbstractContextManager[str | None]:
    return postgres_schema(DATABASE, "bench_scale", required=True)


def _hub(
    root: Path, port: int, members: list[dict[str, Any]], database_url: str | None
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    data_dir = root / "cn"
    result = init_node(
        data_dir,
        NodeConfig(
            node_id="cn",
            country="CN",
            is_hub=True,
            port=port,
            base_url=url,
            sync_interval_seconds=INTERVAL_S,
            **({"database_url": database_url} if database_url else {}),
        ),
        seed=HUB_SEED,
    )
    rt = open_runtime(data_dir)
    try:
        for m in members:
            rt.directory.upsert(
                Member(
                    m["id"], "TH", m["id"], m["url"], keys_from_identity(m["identity"]), ["mou"]
                ),
                create=True,
            )
    finally:
        rt.close()
    return {"dir": data_dir, "url": url, "token": result.admin_token}


async def _search_load(url: str, stop: asyncio.Event) -> list[float]:
    """Latencies (ms) of public searches from ``CLIENTS`` clients until ``stop``."""
    out: list[float] = []
    timeout = aiohttp.ClientTimeout(total=120)

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                params = {"q": rng.choice(QUERIES)} if rng.random() < 0.8 else {}
                start = time.perf_counter()
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with session.get(url + "/api/v1/search", params=params) as resp:
                        await resp.read()
                out.append((time.perf_counter() - start) * 1000)

    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return out


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _held(hub: dict[str, Any], lags: list[float] | None = None) -> int:
    """Summaries the hub holds; ``lags`` gets the event-loop lag p99 it reports (over its
    last minute), so that polling through a sync samples every minute of it."""
    status = _get(hub["url"] + "/hub/status", hub["token"])
    if lags is not None:
        lags.extend(_lag_of(status))
    return sum(int(m.get("items_held") or 0) for m in status["members"])


def _lag_of(status: dict[str, Any]) -> list[float]:
    lag = status.get("event_loop_lag")
    return [float(lag["p99_ms"])] if isinstance(lag, dict) and lag.get("samples") else []


def _lag_p99(hub: dict[str, Any]) -> float | None:
    """The hub's event-loop lag p99 over its last minute, if it reports it."""
    found = _lag_of(_get(hub["url"] + "/hub/status", hub["token"]))
    return found[0] if found else None


def _searching(hub_url: str) -> tuple[asyncio.AbstractEventLoop, asyncio.Event, Any]:
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    result: dict[str, list[float]] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        result["ms"] = loop.run_until_complete(_search_load(hub_url, stop))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def finish() -> list[float]:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=180)
        return result.get("ms", [])

    return loop, stop, finish


def _withdrawal_seconds(
    hub: dict[str, Any], member: dict[str, Any]
) -> tuple[float, float, list[float]]:
    """Seconds from a withdrawal at ``member`` (which notifies the hub, as every member
    does: the hub reads its feed) to the listing's absence from the hub's public search,
    and to its absence from both search and the match lists; and how long each answer of
    the match lists took meanwhile. The listing withdrawn is one the match lists show,
    when one of the member's is among their first 1,000 pairs."""
    matches = _get(hub["url"] + "/admin/v1/matches?limit=1000", hub["token"], timeout=300)
    listed = [
        side["id"]
        for row in matches["matches"]
        for side in (row["request"], row["candidate"])
        if side["owner"] == member["id"]
    ]
    listing_id = listed[0] if listed else f"{member['id']}-off-000001"
    record = _get(f"{member['url']}/admin/v1/listings/{listing_id}", member["token"])["listing"]
    title = record["title"]["en"]
    started = time.monotonic()
    _send(f"{member['url']}/admin/v1/listings/{listing_id}/withdraw", member["token"], "POST")

    def searched() -> bool:
        found = _get(hub["url"] + "/api/v1/search?" + urllib.parse.urlencode({"q": title}))
        return listing_id not in {item["listing"].get("id") for item in found.get("items", [])}

    answers: list[float] = []

    def listed_nowhere() -> bool:
        asked = time.monotonic()
        rows = _get(hub["url"] + "/admin/v1/matches?limit=1000", hub["token"], timeout=300)
        answers.append(time.monotonic() - asked)
        return listing_id not in json.dumps(rows)

    search_s = _wait(searched, 600, every_s=0.05)
    _wait(listed_nowhere, 600, every_s=0.05)
    return search_s, time.monotonic() - started, answers


def _changes(members: list[dict[str, Any]], per_member: int, tag: str) -> None:
    for m in members:
        for i in random.sample(range(1, LISTINGS + 1), per_member):
            lid = f"{m['id']}-off-{i:06d}"
            with contextlib.suppress(OSError):
                rec = _get(f"{m['url']}/admin/v1/listings/{lid}", m["token"])["listing"]
                rec["summary"] = rec["summary"][:1800] + f" [{tag}]"
                _send(f"{m['url']}/admin/v1/listings/{lid}", m["token"], "PUT", rec)


def run() -> list[BenchResult]:
    total = MEMBERS * LISTINGS
    label = f"{MEMBERS} x {LISTINGS:,}" + (" (hub on PostgreSQL)" if DATABASE else "")
    label += f" (members at nice {MEMBER_NICE})" if MEMBER_NICE else ""
    label += " (members read only the hub)" if MEMBER_PULLS == "hub" else ""
    label += f" (semantic {MODEL})" if MODEL != "off" else ""
    with tempfile.TemporaryDirectory(prefix="cattc-bench-scale-") as tmp, _hub_database() as db:
        root = Path(tmp)
        started = time.monotonic()
        hub_port = _free_port()
        hub_url = f"http://127.0.0.1:{hub_port}"
        members = [_member(root, i, hub_url) for i in range(MEMBERS)]
        setup_s = time.monotonic() - started
        hub = _hub(root, hub_port, members, db)
        procs = []
        try:
            for m in members:
                procs.append(_serve(m["dir"], nice=MEMBER_NICE))
            for m in members:
                _wait(lambda m=m: _get(m["url"] + "/healthz"), 120)
            hub_proc = _serve(hub["dir"])
            procs.append(hub_proc)
            _wait(lambda: _get(hub["url"] + "/healthz"), 120)
            sampler = Sampler(hub_proc.pid)
            sampler.start()
            _loop, _stop_event, finish = _searching(hub["url"])
            lags: list[float] = []  # the lag p99 of the minute before each poll
            sync_s = _wait(lambda: _held(hub, lags) >= total, SYNC_DEADLINE_S, every_s=2)
            during_sync = finish()
            lag_sync = max(lags) if lags else None  # the sync's worst minute
            # After the sync: the hub re-matches; searches go on.
            after_start = time.monotonic()
            _loop, _stop_event, finish = _searching(hub["url"])
            time.sleep(min(60.0, 2 * INTERVAL_S))
            during_rematch = finish()
            lag_after = _lag_p99(hub)
            # Steady state: 10 changes per member per interval, hub CPU over two intervals.
            cpu0, t0 = _cpu_s(hub_proc.pid), time.monotonic()
            for round_no in range(2):
                _changes(members, 10, f"steady-{round_no}")
                time.sleep(INTERVAL_S)
            cpu_share = (_cpu_s(hub_proc.pid) - cpu0) / (time.monotonic() - t0)
            steady = [
                sampler.steady(after_start, of=of)
                for of in (Sampler.TREE, Sampler.PROCESS, Sampler.PSS)
            ]
            steady_parts = sampler.steady_parts(after_start)
            withdrawn_search_s, withdrawal_s, answers = _withdrawal_seconds(hub, members[0])
            sampler.done.set()
            peak = [sampler.peak(of=of) for of in (Sampler.TREE, Sampler.PROCESS, Sampler.PSS)]
        finally:
            for proc in procs:
                _stop(proc)
    notes = f"{label}; members set up in {setup_s:.0f} s; sync interval {INTERVAL_S:.0f} s"
    # The goals: RSS < 800 MB for a hub of 200,000 summaries; < 1.5 GB steady and
    # < 2 GB peak for a million.
    if total <= SMALL_HUB:
        peak_goal, peak_max, steady_goal, steady_max = "< 800 MB", 800, "< 800 MB", 800
    else:
        peak_goal, peak_max, steady_goal, steady_max = "< 2 GB peak", 2048, "< 1.5 GB", 1536
    origin = sampler.samples[0][0] if sampler.samples else after_start
    into, sync_end = sampler.peak_at - origin, after_start - origin
    peak_when = (
        f"{into:.0f} s after the hub started, during the first sync"
        if into < sync_end
        else f"{into - sync_end:.0f} s after the first sync"
    )
    results = [
        BenchResult(f"time to first full sync, {label}", sync_s, "s", notes=notes),
        BenchResult(
            f"hub RSS peak, process tree, {label}",
            peak[0],
            "MB",
            goal=peak_goal,
            goal_max=peak_max,
            notes=f"sum over the hub's processes (up to {sampler.most_processes} at once); "
            f"at the peak ({peak_when}), MB: {sampler.at_peak}",
        ),
        BenchResult(
            f"hub RSS steady, process tree, {label}",
            steady[0],
            "MB",
            goal=steady_goal,
            goal_max=steady_max,
            notes=f"median of the samples from the end of the sync on; by process, MB: "
            f"{steady_parts}",
        ),
        BenchResult(f"hub RSS peak, server process alone, {label}", peak[1], "MB"),
        BenchResult(f"hub RSS steady, server process alone, {label}", steady[1], "MB"),
        BenchResult(f"hub PSS peak, process tree, {label}", peak[2], "MB"),
        BenchResult(f"hub PSS steady, process tree, {label}", steady[2], "MB"),
        BenchResult(
            f"search p50 during sync, {label}", _percentile(during_sync, 0.5), "ms", notes=notes
        ),
        BenchResult(
            f"search p99 during sync, {label}",
            _percentile(during_sync, 0.99),
            "ms",
            goal="p99 < 100 ms",
            goal_max=100,
            notes=f"{len(during_sync):,} searches answered during the sync "
            f"({len(during_sync) / max(sync_s, 1e-9):,.0f} a second, {CLIENTS} clients)",
        ),
        BenchResult(
            f"search p99 while re-matching, {label}",
            _percentile(during_rematch, 0.99),
            "ms",
            goal="p99 < 100 ms",
            goal_max=100,
        ),
        BenchResult(
            f"hub CPU in steady state (10 changes/member/interval), {label}",
            cpu_share * 100,
            "% of one core",
        ),
        BenchResult(
            f"withdrawal at a member -> gone from search, {label}",
            withdrawn_search_s,
            "s",
            notes="the member notifies the hub; the hub's next scheduled pull is up to "
            f"{INTERVAL_S:.0f} s away",
        ),
        BenchResult(
            f"withdrawal at a member -> gone from search and matches, {label}",
            withdrawal_s,
            "s",
            goal="< 2 s with notify",
            goal_max=2,
            notes=f"{len(answers)} answers of the match lists (1,000 pairs) after the search's, "
            f"each {', '.join(f'{a:.2f}' for a in answers[:8])} s",
        ),
    ]
    for name, lag in (("during sync (its worst minute)", lag_sync), ("after sync", lag_after)):
        if lag is not None:
            results.append(
                BenchResult(
                    f"hub event-loop lag p99 {name}, {label}",
                    lag,
                    "ms",
                    goal="p99 < 50 ms",
                    goal_max=50,
                )
            )
    return results


if __name__ == "__main__":
    for result in run():
        print(f"{result.name}: {result.value:.1f} {result.unit}")
