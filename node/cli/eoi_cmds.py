"""``cattc eoi``: express interest in a listing through the hub, and answer interest."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import click

from node.cli.output import (
    data_dir_group,
    emit,
    fail,
    json_option,
    runtime,
    table,
)
from node.hub import eoi as eois
from node.hub.eoi import CONTACT_FIELDS
from node.runtime import NodeRuntime
from node.services.peers import peer_info
from protocol.canonical import canonical_bytes
from protocol.timeutil import ms_to_iso
from sync.client import PeerClient, PeerError


async def send_to_hub(rt: NodeRuntime, path: str, obj: dict[str, Any]) -> Any:
    if rt.config.is_hub:  # the hub itself is the requester or the owner
        receive = eois.hub_receive_eoi if path.endswith("/eoi") else eois.hub_receive_reply
        return await rt.run(receive, rt, rt.node_id, obj)
    hub = await rt.run(peer_info, rt, rt.config.hub_id)
    if hub is None or not hub.base_url:
        fail("no hub configured (init with --hub-url and --hub-key)")
    async with aiohttp.ClientSession() as session:
        client = PeerClient(session, rt.node_id, lambda: rt.keys.active, rt.clock)
        resp = await client.request(
            "POST", hub.base_url, hub.node_id, path, body=canonical_bytes(obj)
        )
    payload = resp.json()
    if resp.status != 202:
        err = payload.get("error", {}) if isinstance(payload, dict) else {}
        raise PeerError(f"hub answered {resp.status}: {err.get('message')}", status=resp.status)
    return payload


eoi = data_dir_group("eoi", "Expressions of interest: submit, list, accept, decline.")


@eoi.command()
@click.argument("owner")
@click.argument("listing_id")
@click.option("--message", required=True, help="What your enterprise is interested in.")
@json_option
@click.pass_obj
def submit(data_dir: Path, owner: str, listing_id: str, message: str, as_json: bool) -> None:
    """Send interest in OWNER's LISTING_ID through the hub."""
    with runtime(data_dir) as rt:
        obj = eois.new_eoi(rt, owner, listing_id, message)
        try:
            result = asyncio.run(send_to_hub(rt, "/federation/v1/eoi", obj))
        except PeerError as exc:
            fail(f"{exc}; the interest {obj['id']} stays 'submitted'")
        eois.mark(rt, obj["id"], result["state"])
    emit(as_json, result, lambda d: f"{d['id']}: {d['state']} to {owner}")


@eoi.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
@click.pass_obj
def list_cmd(data_dir: Path, limit: int, as_json: bool) -> None:
    """Interest sent and received, with its state: the LIMIT changed last."""
    with runtime(data_dir) as rt:
        items = eois.list_eois(rt, limit)
    emit(
        as_json,
        items,
        lambda d: table(
            ["id", "from", "listing", "state", "updated", "message / contact"],
            [
                (
                    e["id"],
                    e["requester"],
                    f"{e['owner']}/{e['listing_id']}",
                    e["state"],
                    ms_to_iso(e["updated"]),
                    json.dumps(e["contact"], ensure_ascii=False)
                    if e["contact"]
                    else e["message"][:50],
                )
                for e in d
            ],
        ),
    )


def _answer(
    data_dir: Path, eoi_id: str, decision: str, share: tuple[str, ...], as_json: bool
) -> None:
    with runtime(data_dir) as rt:
        eois.absorb_inbox(rt)
        reply = eois.answer(rt, eoi_id, decision, share)
        try:
            result = asyncio.run(send_to_hub(rt, "/federation/v1/eoi/reply", reply))
        except PeerError as exc:
            fail(f"{exc}; nothing was sent, try again")
        eois.mark(rt, eoi_id, decision)
    emit(
        as_json,
        {**result, "contact": reply["contact"]},
        lambda d: (
            f"{eoi_id}: {decision}"
            + (f", disclosed {', '.join(d['contact'])}" if d["contact"] else "")
        ),
    )


@eoi.command()
@click.argument("eoi_id")
@click.option(
    "--share",
    multiple=True,
    type=click.Choice(CONTACT_FIELDS),
    help="Contact field to disclose (repeat); none by default.",
)
@json_option
@click.pass_obj
def accept(data_dir: Path, eoi_id: str, share: tuple[str, ...], as_json: bool) -> None:
    """Accept EOI_ID, disclosing only the contact fields named with --share."""
    _answer(data_dir, eoi_id, "accepted", share, as_json)


@eoi.command()
@click.argument("eoi_id")
@json_option
@click.pass_obj
def decline(data_dir: Path, eoi_id: str, as_json: bool) -> None:
    """Decline EOI_ID; nothing about this node's contacts leaves."""
    _answer(data_dir, eoi_id, "declined", (), as_json)
