"""``cattc shared``: what this node's feed gave each peer, per listing and per peer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from node.cli.output import data_dir_group, emit, fail, json_option, runtime, table
from node.services import share_log
from protocol.timeutil import ms_to_iso

PEER_ID = re.compile(r"^[a-z][a-z0-9_]{1,31}$")

shared = data_dir_group("shared", "What was shared with whom: per listing, per peer, totals.")


@shared.command("listing")
@click.argument("listing_id")
@json_option
@click.pass_obj
def listing_cmd(data_dir: Path, listing_id: str, as_json: bool) -> None:
    """Which peer received which version of LISTING_ID, and whether it was withdrawn
    from it later."""
    with runtime(data_dir) as rt:
        if not share_log.listing_exists(rt.engine, listing_id):
            fail(f"no listing {listing_id!r} on this node ('cattc listings DATA_DIR list')")
        rows = share_log.for_listing(rt.engine, listing_id)
    data = {
        "listing_id": listing_id,
        "peers": [h.as_dict() for h in share_log.holdings(rows)],
        "history": [r.as_dict() for r in rows],
    }
    emit(as_json, data, _render_listing)


def _render_listing(data: dict[str, Any]) -> str:
    if not data["peers"]:
        return f"{data['listing_id']}: not shared with any peer yet"
    return table(
        ["PEER", "VERSION", "RECEIVED", "WITHDRAWN"],
        [
            [p["reader"], p["version"], _when(p["received_at"]), _when(p["withdrawn_at"])]
            for p in data["peers"]
        ],
    )


@shared.command("peer")
@click.argument("peer")
@click.option("--page", type=click.IntRange(min=1, max=2**31), default=1, show_default=True)
@click.option(
    "--per-page",
    type=click.IntRange(min=1, max=1000),
    default=share_log.PAGE_SIZE,
    show_default=True,
)
@json_option
@click.pass_obj
def peer_cmd(data_dir: Path, peer: str, page: int, per_page: int, as_json: bool) -> None:
    """What PEER received from this node, newest first."""
    if not PEER_ID.match(peer):
        fail(f"{peer!r} is not a node id (lower-case letters, digits and _, e.g. 'th')")
    with runtime(data_dir) as rt:
        total = share_log.count_for_peer(rt.engine, peer)
        rows = share_log.for_peer(rt.engine, peer, offset=(page - 1) * per_page, limit=per_page)
    if total and not rows:
        fail(f"page {page} is past the end: {peer} has {total} rows ({per_page} a page)")
    data = {
        "peer": peer,
        "total": total,
        "page": page,
        "per_page": per_page,
        "rows": [r.as_dict() for r in rows],
    }
    emit(as_json, data, _render_peer)


def _render_peer(data: dict[str, Any]) -> str:
    if not data["rows"]:
        return f"nothing was shared with {data['peer']} yet"
    body = table(
        ["WHEN", "LISTING", "VERSION", "WHAT"],
        [[_when(r["at"]), r["listing_id"], r["version"], r["kind"]] for r in data["rows"]],
    )
    first = (data["page"] - 1) * data["per_page"] + 1
    last = first + len(data["rows"]) - 1
    return f"{body}\nrows {first}-{last} of {data['total']}"


@shared.command("peers")
@json_option
@click.pass_obj
def peers_cmd(data_dir: Path, as_json: bool) -> None:
    """Each peer that received anything, with counts."""
    with runtime(data_dir) as rt:
        totals = [t.as_dict() for t in share_log.peers(rt.engine)]
    emit(
        as_json,
        totals,
        lambda d: (
            table(
                ["PEER", "LISTINGS", "SUMMARIES", "WITHDRAWALS", "LAST"],
                [
                    [
                        t["reader"],
                        t["listings"],
                        t["summaries"],
                        t["withdrawals"],
                        _when(t["last_at"]),
                    ]
                    for t in d
                ],
            )
            if d
            else "nothing was shared with any peer yet"
        ),
    )


def _when(ms: int | None) -> str:
    return ms_to_iso(ms) if ms is not None else "-"
