"""``cattc directory``: the hub operator keeps the member directory."""

from __future__ import annotations

import asyncio
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
from node.runtime import NodeRuntime
from node.services.directory import Member
from node.services.member_identity import (
    IdentityUnavailable,
    IdentityUnreachable,
    fetch_member_keys,
)
from node.services.member_keys import FETCH, OPERATOR
from protocol.keys import split_key_name

directory = data_dir_group("directory", "Add, update, suspend and show the hub's members.")


def _keys(
    key_opts: tuple[str, ...], fetch: bool, base_url: str, node_id: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The keys given, and where each came from (``--key``: operator; ``--fetch``: fetch)."""
    keys: dict[str, Any] = {}
    for opt in key_opts:
        name, sep, value = opt.partition("=")
        try:
            split_key_name(name)
        except ValueError:
            fail(f"--key must look like ed25519:1=<base64url key>, not {opt!r}")
        if not sep or not value:
            fail(f"--key {name} has no key value")
        keys[name] = {"key": value}
    sources = dict.fromkeys(keys, OPERATOR)
    if fetch:
        fetched = _fetch_keys(base_url, node_id)
        keys.update(fetched)
        sources.update(dict.fromkeys(fetched, FETCH))
    return keys, sources


def _fetch_keys(base_url: str, node_id: str) -> dict[str, Any]:
    async def get() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            return await fetch_member_keys(session, base_url, node_id)

    try:
        return asyncio.run(get())
    except IdentityUnreachable as exc:
        fail(f"{exc.message}; check --base-url or give --key")
    except IdentityUnavailable as exc:
        fail(exc.message)


def _common(fn: Any) -> Any:
    fn = click.option("--base-url", help="The member's URL.")(fn)
    fn = click.option("--country", help="ISO 3166 alpha-2 code.")(fn)
    fn = click.option("--name", help="Human name.")(fn)
    fn = click.option("--group", "groups", multiple=True, help="Group, e.g. mou (repeat).")(fn)
    fn = click.option("--key", "key_opts", multiple=True, help="ed25519:<id>=<key> (repeat).")(fn)
    fn = click.option("--fetch", is_flag=True, help="Take keys from its identity document.")(fn)
    return fn


def _hub_only(rt: NodeRuntime) -> None:
    """A member's directory is the hub's signed copy: a change made here raised its
    version above the hub's, and every directory the hub sent after it was refused."""
    if not rt.config.is_hub:
        fail(
            "only the hub changes the directory; this node takes it from the hub. "
            "To pull a node the hub does not list, name it under [[peers]] in node.toml"
        )


@directory.command()
@click.argument("node_id")
@_common
@json_option
@click.pass_obj
def add(data_dir: Path, /, node_id: str, as_json: bool, **o: Any) -> None:
    """Add NODE_ID to the directory."""
    if not o["base_url"] or not o["country"]:
        fail("add needs --base-url and --country")
    keys, sources = _keys(o["key_opts"], o["fetch"], o["base_url"], node_id)
    member = Member(
        node_id=node_id,
        country=o["country"].upper(),
        name=o["name"] or node_id,
        base_url=o["base_url"],
        keys=keys,
        groups=list(o["groups"]),
        sources=sources,
    )
    with runtime(data_dir) as rt:
        _hub_only(rt)
        version = rt.directory.upsert(member, create=True)
    emit(
        as_json,
        {"version": version, "member": member.to_json()},
        lambda d: f"added {node_id}; directory version {d['version']}",
    )


@directory.command()
@click.argument("node_id")
@_common
@click.option("--status", type=click.Choice(["active", "suspended"]))
@json_option
@click.pass_obj
def update(data_dir: Path, /, node_id: str, as_json: bool, **o: Any) -> None:
    """Change what the directory says of NODE_ID (only the options given)."""
    with runtime(data_dir) as rt:
        _hub_only(rt)
        member = rt.directory.get(node_id)
        if member is None:
            fail(f"{node_id} is not a member; use 'directory add'")
        member.base_url = o["base_url"] or member.base_url
        member.country = (o["country"] or member.country).upper()
        member.name = o["name"] or member.name
        if o["groups"]:
            member.groups = list(o["groups"])
        if o["key_opts"] or o["fetch"]:
            keys, sources = _keys(o["key_opts"], o["fetch"], member.base_url, node_id)
            member.keys.update(keys)
            member.sources.update(sources)
        member.status = o["status"] or member.status
        version = rt.directory.upsert(member, create=False)
    emit(
        as_json,
        {"version": version, "member": member.to_json()},
        lambda d: f"updated {node_id}; directory version {d['version']}",
    )


@directory.command()
@click.argument("node_id")
@json_option
@click.pass_obj
def suspend(data_dir: Path, node_id: str, as_json: bool) -> None:
    """Suspend NODE_ID: its calls are refused and nothing more is pulled from it."""
    with runtime(data_dir) as rt:
        _hub_only(rt)
        version = rt.directory.set_status(node_id, "suspended")
    emit(
        as_json,
        {"version": version},
        lambda d: f"suspended {node_id}; directory version {d['version']}",
    )


@directory.command()
@json_option
@click.pass_obj
def show(data_dir: Path, as_json: bool) -> None:
    """List the members."""
    with runtime(data_dir) as rt:
        members = [{**m.to_json(), "key_sources": m.sources} for m in rt.directory.members()]
        version = rt.directory.version()
        is_hub = rt.config.is_hub
    if not members and not as_json:
        click.echo(
            "the directory has no members yet: add them with 'cattc directory DATA_DIR add'"
            if is_hub
            else "no directory from the hub yet: it arrives with the first sync from the hub "
            "('cattc sync DATA_DIR status')"
        )
        return
    emit(
        as_json,
        {"version": version, "members": members},
        lambda d: (
            f"directory version {d['version']}\n"
            + table(
                ["node", "country", "status", "groups", "base url", "keys"],
                [
                    (
                        m["node_id"],
                        m["country"],
                        m["status"],
                        m["groups"],
                        m["base_url"],
                        list(m["keys"]),
                    )
                    for m in d["members"]
                ],
            )
        ),
    )
