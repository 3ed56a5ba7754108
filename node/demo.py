"""``make demo``: the CATTC hub and the nine national nodes on loopback, with the sample data.

Each node is a real ``cattc serve`` process with its own SQLite database in a temporary
directory. The hub's directory lists every member (Malaysia and the Philippines in
``no_mou``); nodes sync every few seconds; the demo prints what each node holds, what the
hub holds of each member under that member's policy, the matches, and the dashboard URL.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from node.config import NodeConfig
from node.runtime import open_runtime
from node.sample_dates import REFERENCE, days_since_reference, shift_record
from node.services.directory import Member, keys_from_identity
from node.services.importer import read_records
from node.services.setup import init_node
from node.ui.accounts import create_user

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "listings.jsonl"
CENTERS = {
    "cn": ("CN", "China-ASEAN Technology Transfer Center (hub)"),
    "th": ("TH", "China-Thailand Technology Transfer Center"),
    "la": ("LA", "China-Laos Technology Transfer Center"),
    "kh": ("KH", "China-Cambodia Technology Transfer Center"),
    "mm": ("MM", "China-Myanmar Technology Transfer Center"),
    "vn": ("VN", "China-Vietnam Technology Transfer Center"),
    "bn": ("BN", "China-Brunei Technology Transfer Center"),
    "id": ("ID", "China-Indonesia Technology Transfer Center"),
    "my": ("MY", "China-Malaysia Technology Transfer Center"),
    "ph": ("PH", "China-Philippines Technology Transfer Center"),
}
NO_MOU = {"my", "ph"}
# Every center in the demo shows its public offers and requests to anyone: public search
# serves only what an owner's rule for "*" gives (the default policy has none).
PUBLIC_RULES = """  - audience: "*"
    category: tech_offer
    visibility: [public]
    fields: [title, summary, keywords, ipc, isic, sector, trl, stage, partnership, country, expires]
  - audience: "*"
    category: tech_request
    visibility: [public]
    fields: [title, summary, keywords, ipc, isic, sector, need, trl_min, partnership, country,
             expires]
"""
INTERVAL = 3.0
DEMO_USER = "officer"
"""Each node's demo console account (an admin), with the password ``demo_password(node)``."""


def demo_password(node_id: str) -> str:
    return f"cattc-demo-{node_id}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str, token: str | None = None, timeout: float = 5) -> Any:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_until(check: Any, deadline_s: float, what: str) -> Any:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"demo: gave up waiting for {what}")


def setup(root: Path) -> dict[str, dict[str, Any]]:
    records: dict[str, list[tuple[int, Any]]] = {}
    days = days_since_reference()
    for line, rec in read_records(SAMPLE):
        records.setdefault(rec["owner"], []).append((line, shift_record(rec, days)))
    nodes: dict[str, dict[str, Any]] = {}
    for node_id in CENTERS:
        port = free_port()
        nodes[node_id] = {"port": port, "url": f"http://127.0.0.1:{port}", "dir": root / node_id}
    hub = nodes["cn"]
    hub_result = init_node(
        hub["dir"],
        NodeConfig(
            node_id="cn",
            country="CN",
            name=CENTERS["cn"][1],
            port=hub["port"],
            base_url=hub["url"],
            is_hub=True,
            sync_interval_seconds=INTERVAL,
            sync_jitter_seconds=0.5,
        ),
    )
    hub["token"] = hub_result.admin_token
    hub_key = hub_result.keys.verify_keys()[hub_result.keys.active.name].b64
    for node_id, (country, name) in CENTERS.items():
        if node_id == "cn":
            continue
        info = nodes[node_id]
        result = init_node(
            info["dir"],
            NodeConfig(
                node_id=node_id,
                country=country,
                name=name,
                port=info["port"],
                base_url=info["url"],
                hub_url=hub["url"],
                hub_key=hub_key,
                sync_interval_seconds=INTERVAL,
                sync_jitter_seconds=0.5,
            ),
        )
        info["token"] = result.admin_token
    hub_rt = open_runtime(hub["dir"])
    try:
        for node_id, info in nodes.items():
            rt = hub_rt if node_id == "cn" else open_runtime(info["dir"])
            try:
                rt.policy.apply(rt.policy.active().text + PUBLIC_RULES, "demo")
                create_user(
                    rt.engine, DEMO_USER, demo_password(node_id), "admin", now_ms=rt.clock()
                )
                report = rt.listings.import_records(records.get(node_id, []))
                info["imported"] = report.created
                if node_id != "cn":
                    hub_rt.directory.upsert(
                        Member(
                            node_id=node_id,
                            country=CENTERS[node_id][0],
                            name=CENTERS[node_id][1],
                            base_url=info["url"],
                            keys=keys_from_identity(rt.identity()),
                            groups=["no_mou" if node_id in NO_MOU else "mou"],
                        ),
                        create=True,
                    )
            finally:
                if rt is not hub_rt:
                    rt.close()
    finally:
        hub_rt.close()
    return nodes


def start(nodes: dict[str, dict[str, Any]], log_dir: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    env = {**os.environ, "CATTC_LOG_LEVEL": "WARNING"}
    for node_id, info in nodes.items():
        log = (log_dir / f"{node_id}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "node.cli.main", "serve", str(info["dir"])],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
    for info in nodes.values():
        wait_until(lambda u=info["url"]: get_json(u + "/healthz"), 120, f"{info['url']} to start")
    return procs


def print_tables(nodes: dict[str, dict[str, Any]], status: dict[str, Any]) -> None:
    print(f"\n{'node':5} {'url':24} {'own listings':>12}  by category")
    for node_id, info in nodes.items():
        st = get_json(info["url"] + "/admin/v1/status", info["token"])
        cats = ", ".join(f"{c} {n}" for c, n in sorted(st["listings"].items()))
        print(f"{node_id:5} {info['url']:24} {sum(st['listings'].values()):>12}  {cats}")
    print("\nwhat the hub holds of each member (its policy for 'cn' decides):")
    print(f"{'member':7} {'groups':8} {'state':9} {'held':>5} {'lag':>4}  last success")
    for m in status["members"]:
        age = m["last_success_age_ms"]
        print(
            f"{m['node_id']:7} {','.join(m['groups']):8} {m['state']:9} {m['items_held']:>5} "
            f"{m['lag'] if m['lag'] is not None else '-':>4}  "
            f"{'-' if age is None else f'{age / 1000:.1f} s ago'}"
        )


def print_matches(hub: dict[str, Any]) -> None:
    # The matching worker answers between its batches: on a busy machine, a while.
    url = hub["url"] + "/admin/v1/matches?k=1&limit=15"
    found = get_json(url, hub["token"], timeout=120)["matches"]
    print("\nbest match per request across countries (hub's matcher, top 15 by score):")
    print(f"{'request':18} {'candidate':18} {'score':>5}  shared")
    for m in found:
        req, cand = m["request"], m["candidate"]
        if req["owner"] == cand["owner"]:
            continue
        shared = ", ".join([*m["shared_codes"][:2], *m["shared_terms"][:3]])
        print(
            f"{req['owner'] + '/' + req['id']:18} {cand['owner'] + '/' + cand['id']:18} "
            f"{m['score']:>5.2f}  {shared}"
        )

    def notices_sent() -> str:
        status = get_json(hub["url"] + "/hub/status", hub["token"])
        members = status["members"]
        return ", ".join(f"{m['node_id']} {m['matches']}" for m in members if m["matches"])

    # Notices follow the re-match after each pull: give them a few sync rounds.
    end = time.monotonic() + 10 * INTERVAL
    sent = notices_sent()
    while not sent and time.monotonic() < end:
        time.sleep(0.5)
        sent = notices_sent()
    print(f"match notices sent to members: {sent or 'none yet'}")


def print_matching(hub: dict[str, Any]) -> None:
    """How the hub matches: its model, and the listings it has still to encode."""
    part = get_json(hub["url"] + "/hub/status", hub["token"]).get("matching", {})
    sem = part.get("semantic")
    if not sem:
        print(f"hub matching: {part.get('model')}, starting")
    elif not sem["enabled"]:
        print(f"hub matching: lexical only ({sem['reason']})")
    elif sem["to_encode"]:
        print(
            f"hub matching: semantic ({sem['model']}); {sem['to_encode']} listings still to "
            "encode in the background (matched lexically until then; see the dashboard)"
        )
    else:
        print(f"hub matching: semantic ({sem['model']}), every listing encoded")


def main() -> None:
    if not SAMPLE.exists():
        raise SystemExit(f"demo: sample data not found at {SAMPLE}")
    root = Path(tempfile.mkdtemp(prefix="cattc-demo-"))
    print(f"demo: creating the hub and 9 national nodes in {root}")
    days = days_since_reference()
    if days:
        print(
            f"demo: the sample was frozen on {REFERENCE.isoformat()}; its dates are moved "
            f"{days} days forward, so each listing keeps its age and the time it has left"
        )
    nodes = setup(root)
    procs = start(nodes, root)
    hub = nodes["cn"]
    print("demo: all 10 nodes serving; waiting for the first sync rounds ...")

    def synced() -> Any:
        status = get_json(hub["url"] + "/hub/status", hub["token"])
        states = [m["state"] for m in status["members"]]
        return status if states and all(s == "ok" for s in states) else None

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    failed = ""
    try:
        # Inside the try: whatever goes wrong while showing the network (a busy machine's
        # time-out, Ctrl-C), the nodes are stopped below, never left running.
        status = wait_until(synced, 240, "every member to sync")
        print_tables(nodes, status)
        print_matches(hub)
        print_matching(hub)
        print(f"\nhub dashboard: {hub['url']}/hub/dashboard#token={hub['token']}")
        print(f"public search: {hub['url']}/api/v1/search?q=rice")
        print(f"\nmarketplace (public, no account): {hub['url']}/")
        print(f"consoles (user {DEMO_USER!r}, password cattc-demo-<node>):")
        for node_id, info in nodes.items():
            print(f"  {node_id:3} {info['url']}/console   password {demo_password(node_id)}")
        print("admin tokens are in <data dir>/admin.token; press Ctrl-C to stop")
        signal.pause()
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError) as exc:  # TimeoutError is an OSError
        failed = f"demo: {exc}"
    finally:
        # A second Ctrl-C or SIGTERM (a terminal or `timeout` signals the whole process
        # group) must not cut the shutdown short: the nodes are stopped either way.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("\ndemo: stopping ...")
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        print(f"demo: stopped; data left in {root}")
    if failed:
        raise SystemExit(failed)


if __name__ == "__main__":
    main()
