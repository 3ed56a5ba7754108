"""``cattc custody`` and ``cattc matches``: what a national node learns from the hub."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.cli.output import (
    data_dir_argument,
    data_dir_group,
    emit,
    fail,
    json_option,
    runtime,
    table,
)
from node.hub.custody import check_custody
from node.runtime import NodeRuntime
from node.services.leader import leader_in
from node.services.peers import PinnedKeys, peer_info
from node.storage.models import InboxRow
from protocol.signing import SignatureError, verify_object
from protocol.timeutil import ms_to_iso
from sync.client import PeerClient, PeerError

custody = data_dir_group("custody", "Check what the hub holds of this node's data.")


async def _fetch_custody(rt: NodeRuntime) -> Any:
    hub = await rt.run(peer_info, rt, rt.config.hub_id)
    if hub is None or not hub.base_url:
        fail("no hub configured (init with --hub-url and --hub-key)")
    async with aiohttp.ClientSession() as session:
        client = PeerClient(session, rt.node_id, lambda: rt.keys.active, rt.clock)
        doc = await client.get_json(hub.base_url, hub.node_id, "/federation/v1/custody")
    try:
        verify_object(doc, hub.node_id, PinnedKeys(hub))
    except SignatureError as exc:
        fail(f"the hub's custody list does not verify: {exc.message}")
    if doc.get("type") != "custody" or doc.get("audience") != rt.node_id:
        fail("the hub answered with something other than this node's custody list")
    return doc


@custody.command()
@json_option
@click.pass_obj
def check(data_dir: Path, as_json: bool) -> None:
    """Report missing, extra and outdated entries in the hub's custody of our listings."""
    with runtime(data_dir) as rt:
        try:
            doc = asyncio.run(_fetch_custody(rt))
        except PeerError as exc:
            fail(f"{exc}; is the hub reachable?")
        report = check_custody(rt, doc)

    def render(d: dict[str, Any]) -> str:
        lines = [f"hub {d['hub']} holds {d['held']} of our listings; our feed gave it {d['given']}"]
        for kind in ("missing", "extra", "outdated"):
            for lid in d[kind]:
                lines.append(f"{kind:9} {lid}")
        lines.append("custody matches our log" if d["ok"] else "custody does NOT match our log")
        return "\n".join(lines)

    emit(as_json, report, render)
    if not report["ok"]:
        raise SystemExit(1)


@click.command()
@data_dir_argument
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
def matches(data_dir: Path, limit: int, as_json: bool) -> None:
    """List the match notices this node received from the hub (on the hub: its matches)."""
    with runtime(data_dir) as rt:
        if rt.config.is_hub:
            _hub_matches(rt, limit, as_json)
            return
    with runtime(data_dir) as rt:
        notices = rt.db.run_sync(_received_notices, limit)

    def render(items: list[dict[str, Any]]) -> str:
        return table(
            ["received", "our listing", "counterpart", "score", "what we may see"],
            [
                (
                    ms_to_iso(n["ts"]),
                    n["own_listing"]["id"],
                    f"{n['counterpart']['owner']}/{n['counterpart']['listing_id']}",
                    f"{n['score']:.2f}",
                    _title(n["counterpart"]),
                )
                for n in items
            ],
        )

    emit(as_json, notices, render)


def _leaders_matches(rt: NodeRuntime, limit: int) -> list[dict[str, Any]] | None:
    """The running hub's match list (its leader process's matcher), or None when no
    hub process answers (none runs, or its leader row is from one that died)."""
    from node.hub.app_setup import FORWARD_TIMEOUT_S, call_leader  # noqa: PLC0415

    info = rt.db.run_sync(leader_in)
    if info is None or not info.url:
        return None

    async def ask() -> Any:
        async with aiohttp.ClientSession() as session:
            path = f"/matches?k=3&limit={limit}"
            return await call_leader(session, info, "GET", path, FORWARD_TIMEOUT_S)

    try:
        rows = asyncio.run(ask())["matches"]
    except (aiohttp.ClientError, TimeoutError):
        return None

    def ref(x: dict[str, str]) -> str:
        return f"{x['owner']}/{x['id']}"

    return [
        {
            "request": ref(r["request"]),
            "candidate": ref(r["candidate"]),
            "kind": r["kind"],
            "score": r["score"],
            "shared": [*r["shared_codes"], *r["shared_terms"]],
        }
        for r in rows
    ]


def _matches_here(rt: NodeRuntime, limit: int) -> list[dict[str, Any]]:
    from node.hub.notices import MatchingService  # noqa: PLC0415

    service = MatchingService(rt)
    service.refresh()
    found = service.best(limit, k=3)
    return [
        {
            "request": f"{m.request[0]}/{m.request[1]}",
            "candidate": f"{m.candidate[0]}/{m.candidate[1]}",
            "kind": m.kind,
            "score": round(m.score, 4),
            "shared": [*m.shared_codes, *m.shared_terms],
        }
        for m in found
    ]


def _title(counterpart: dict[str, Any]) -> str:
    """What a notice shows of its counterpart: its English title, else a title in another
    language, else its descriptor. The fields are the counterpart owner's, passed on by
    the hub as they came: a title may be anything JSON holds."""
    fields = counterpart.get("fields")
    title = fields.get("title") if isinstance(fields, dict) else None
    if isinstance(title, dict):
        texts = [title.get("en"), *title.values()]
        title = next((t for t in texts if isinstance(t, str) and t), None)
    if isinstance(title, str) and title:
        return title
    return str(counterpart.get("descriptor", ""))


def _received_notices(session: Session, limit: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(InboxRow)
        .where(InboxRow.type == "match_notice")
        .order_by(InboxRow.id.desc())
        .limit(limit)
    )
    return [json.loads(r.obj) for r in rows]


def _hub_matches(rt: NodeRuntime, limit: int, as_json: bool) -> None:
    """The hub's own view: the best candidates of each request it holds. From the running
    hub's matcher when it answers (no second matcher in memory beside it); computed here
    when no hub is running."""
    data = _leaders_matches(rt, limit)
    if data is None:
        data = _matches_here(rt, limit)
    emit(
        as_json,
        data,
        lambda d: table(
            ["request", "candidate", "kind", "score", "shared"],
            [
                (x["request"], x["candidate"], x["kind"], f"{x['score']:.2f}", x["shared"][:5])
                for x in d
            ],
        ),
    )
