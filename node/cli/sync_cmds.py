"""``cattc sync``, ``cattc verify`` and ``cattc keys``: operating federation sync."""

from __future__ import annotations

import asyncio
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
from node.config import KEY_FILE, ConfigError, load_config
from node.runtime import NodeRuntime
from node.services.peers import peer_info, pull_targets
from node.services.sync_manager import SyncManager
from node.services.sync_status import peer_statuses, quarantined, verify_held
from node.storage.models import SyncRunRow
from protocol.key_transition import rotate_with_transition
from protocol.keys import KeyFileError, KeyStore
from protocol.timeutil import ms_to_iso
from sync.interfaces import RunRecord

sync = data_dir_group("sync", "Pull from peers now, or show how sync stands.")


LOCK_WAIT_S = 150.0  # longer than one pull may take in the server (its run timeout)


def _waiting(peer: str) -> None:
    click.echo(
        f"a pull of {peer} is already running in another process (cattc serve?); "
        "waiting for it to end",
        err=True,
    )


async def _sync_now(
    rt: NodeRuntime, peer: str | None, *, from_start: bool = False
) -> list[RunRecord]:
    """Pull now, one peer or all. A pull of the same peer running in another process
    (the server's schedule, a hub worker) is waited for, then this one runs: never two
    at once, which would apply the same page twice. ``from_start``: the peer's feed is
    read again from its first page (what is held already counts as duplicates)."""
    async with aiohttp.ClientSession() as session:
        manager = SyncManager(rt, session, lock_wait_s=LOCK_WAIT_S, on_lock_wait=_waiting)
        await manager.refresh_directory()
        if peer:
            info = await rt.run(peer_info, rt, peer)
            if info is None or not info.base_url or info.status == "suspended":
                fail(f"{peer} is not a peer of this node, or is suspended")
            peers = [peer]
            if from_start:
                await rt.run(manager.store.reset_cursor, peer)
        else:
            peers = [p.node_id for p in await rt.run(pull_targets, rt)]
        runs = await asyncio.gather(*(manager.sync_peer(p, force=True) for p in peers))
    return [run or _still_busy(rt, p) for p, run in zip(peers, runs, strict=True)]


def _still_busy(rt: NodeRuntime, peer: str) -> RunRecord:
    return RunRecord(
        peer=peer,
        started=rt.clock(),
        error=(
            f"a pull of {peer} in another process did not end within {LOCK_WAIT_S:g} s; "
            f"its result shows in 'cattc sync DATA_DIR runs --peer {peer}'"
        ),
    )


@sync.command()
@click.option("--peer", help="Only this peer.")
@click.option(
    "--from-start",
    is_flag=True,
    help="Read the peer's feed again from its first page (with --peer): after raising "
    "max_listings_per_member, to take the listings it quarantined.",
)
@json_option
@click.pass_obj
def now(data_dir: Path, peer: str | None, from_start: bool, as_json: bool) -> None:
    """Pull every peer's feed now (or one peer's)."""
    if from_start and not peer:
        fail("--from-start needs --peer: one peer's feed is read again at a time")
    with runtime(data_dir) as rt:
        runs = asyncio.run(_sync_now(rt, peer, from_start=from_start))
    data = [r.__dict__ for r in runs]
    emit(
        as_json,
        data,
        lambda d: table(
            ["peer", "applied", "retracted", "rejected", "lag", "error"],
            [
                (
                    r["peer"],
                    r["applied"],
                    r["retracted"],
                    r["rejected"],
                    None
                    if r["head"] is None or r["position"] is None
                    else r["head"] - r["position"],
                    r["error"],
                )
                for r in d
            ],
        ),
    )
    if any(r.error for r in runs):
        raise SystemExit(1)


@sync.command()
@json_option
@click.pass_obj
def status(data_dir: Path, as_json: bool) -> None:
    """Per peer: state, last success, lag, errors, copies held."""
    with runtime(data_dir) as rt:
        peers = peer_statuses(rt)
    emit(
        as_json,
        peers,
        lambda d: table(
            ["peer", "state", "last success", "lag", "held", "failures", "last error"],
            [
                (
                    p["peer"],
                    p["state"],
                    ms_to_iso(p["last_success"]) if p["last_success"] else None,
                    p["lag"],
                    p["held"],
                    p["failures"],
                    (p["last_error"] or "")[:60] or None,
                )
                for p in d
            ],
        ),
    )


@sync.command()
@click.option("--peer", help="Only this peer.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@json_option
@click.pass_obj
def runs(data_dir: Path, peer: str | None, limit: int, as_json: bool) -> None:
    """Recent sync runs."""
    with runtime(data_dir) as rt, Session(rt.engine) as session:
        stmt = select(SyncRunRow).order_by(SyncRunRow.id.desc()).limit(limit)
        if peer:
            stmt = stmt.where(SyncRunRow.peer == peer)
        rows = [
            {
                k: getattr(r, k)
                for k in (
                    "peer",
                    "started",
                    "finished",
                    "applied",
                    "retracted",
                    "rejected",
                    "lag",
                    "error",
                )
            }
            for r in session.scalars(stmt)
        ]
    emit(
        as_json,
        rows,
        lambda d: table(
            ["peer", "started", "applied", "retracted", "rejected", "lag", "error"],
            [
                (
                    r["peer"],
                    ms_to_iso(r["started"]),
                    r["applied"],
                    r["retracted"],
                    r["rejected"],
                    r["lag"],
                    r["error"],
                )
                for r in d
            ],
        ),
    )


@sync.command()
@click.option("--peer", help="Only this peer.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--items", is_flag=True, help="With each item's kept text (--json only).")
@json_option
@click.pass_obj
def quarantine(data_dir: Path, peer: str | None, limit: int, items: bool, as_json: bool) -> None:
    """Items refused from peers, newest first: the newest max_quarantine_per_member of
    each peer are kept."""
    if items and not as_json:
        fail("--items needs --json: an item's text is up to 100 KB")
    with runtime(data_dir) as rt:
        rows = quarantined(rt, peer, limit, with_items=items)
    emit(
        as_json,
        rows,
        lambda d: table(
            ["peer", "received", "code", "listing", "message"],
            [
                (
                    r["peer"],
                    ms_to_iso(r["received_at"]),
                    r["code"],
                    r["listing_id"],
                    r["message"][:80],
                )
                for r in d
            ],
        ),
    )


@click.command()
@data_dir_argument
@json_option
def verify(data_dir: Path, as_json: bool) -> None:
    """Re-verify every stored remote summary against its origin's keys."""
    with runtime(data_dir) as rt:
        report = verify_held(rt)
    emit(
        as_json,
        report,
        lambda d: "\n".join(
            [f"{b['origin']}/{b['listing_id']}: {b['reason']}" for b in d["bad"]]
            + [f"verified {d['ok']} of {d['total']} stored summaries, {len(d['bad'])} bad"]
        ),
    )
    if report["bad"]:
        raise SystemExit(1)


keys = data_dir_group("keys", "Manage this node's signing keys.")


@keys.command()
@json_option
@click.pass_obj
def rotate(data_dir: Path, as_json: bool) -> None:
    """Make a new signing key; the old one stays valid for what it signed before.

    The retiring key signs a hand-over to the new one, published in the identity
    document. On the hub this also publishes a new directory version: members find it
    signed by a key they did not pin, follow the hand-over from the key they pinned,
    and pin the new one."""
    with runtime(data_dir) as rt:
        rotated = rotate_with_transition(rt.keys, rt.node_id, rt.clock())
        rotated.save(data_dir / KEY_FILE)
        version = rt.directory.bump() if rt.config.is_hub else None
    data = {
        "active": rotated.active.name,
        "old": [f"ed25519:{k.key_id}" for k in rotated.old],
        "directory_version": version,
    }

    def text(d: dict[str, Any]) -> str:
        out = f"new signing key {d['active']}; retired {', '.join(d['old'])}. "
        if d["directory_version"] is not None:
            out += (
                f"Directory version {d['directory_version']} lists the new key; members "
                "re-pin it through the hand-over the old key signed. "
            )
        return out + "Restart 'cattc serve' so it signs with the new key."

    emit(as_json, data, text)


@keys.command("show")
@json_option
@click.pass_obj
def keys_show(data_dir: Path, as_json: bool) -> None:
    """Show this node's public keys."""
    try:
        load_config(data_dir)  # a node's data directory, not just any key file
        store = KeyStore.load(data_dir / KEY_FILE)
    except (ConfigError, KeyFileError) as exc:
        fail(str(exc))
    data = {
        name: {"key": info.b64, "expired_at": info.expired_at}
        for name, info in store.verify_keys().items()
    }
    emit(
        as_json,
        data,
        lambda d: "\n".join(
            f"{n}  {v['key']}"
            + (f"  (expired {ms_to_iso(v['expired_at'])})" if v["expired_at"] else "  (active)")
            for n, v in d.items()
        ),
    )
