"""The operator's federation commands, through click's CliRunner: ``cattc directory``
(add, update, suspend, show, --fetch), ``cattc keys rotate`` and ``cattc verify``."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.cli.main import cli
from node.config import KEY_FILE
from node.runtime import open_runtime
from node.services.remote_store import RemoteStore
from node.storage.models import InboxRow, RemoteListingRow
from protocol.b64 import b64url_encode
from protocol.canonical import canonical_bytes
from protocol.keys import KeyStore
from tests.federation.network import NodeFactory, load_records, start_network
from tests.node.sample import sample_records
from tests.nodes import make_node_dir, seed_for

DatabaseUrlFactory = Callable[[str], str]
TH_KEY = b64url_encode(KeyStore.generate(0, seed=seed_for("th")).active.public)


def cattc(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args: str | Path) -> str:
    result = cattc(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    return result.stdout


def fails(*args: str | Path) -> str:
    """Run a command that must fail with one line on stderr; return that line."""
    result = cattc(*args)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


def shown(hub_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok("directory", hub_dir, "show", "--json"))
    return data


def hub_dir(tmp_path: Path, database_url: DatabaseUrlFactory) -> Path:
    data_dir, _, _ = make_node_dir(tmp_path, "cn", database_url("cn"), is_hub=True)
    return data_dir


# -- cattc directory ---------------------------------------------------------------------


def test_directory_add_update_suspend_show(
    tmp_path: Path, database_url: DatabaseUrlFactory
) -> None:
    d = hub_dir(tmp_path, database_url)
    assert shown(d) == {"version": 0, "members": []}
    assert ok("directory", d, "show") == (
        "the directory has no members yet: add them with 'cattc directory DATA_DIR add'\n"
    )
    member, _, _ = make_node_dir(tmp_path, "th", database_url("th"))
    assert ok("directory", member, "show") == (
        "no directory from the hub yet: it arrives with the first sync from the hub "
        "('cattc sync DATA_DIR status')\n"
    )
    # A change made at a member raised its copy's version above the hub's: every
    # directory the hub sent after it was refused as older.
    for change in (
        ("add", "zz", "--base-url", "http://zz.example", "--country", "LA"),
        ("update", "cn", "--name", "x"),
        ("suspend", "cn"),
    ):
        line = fails("directory", member, *change)
        assert line.startswith("error: only the hub changes the directory;"), line
    assert json.loads(ok("directory", member, "show", "--json"))["version"] == 0
    out = ok(
        "directory", d, "add", "th", "--base-url", "http://th.example:8080", "--country", "th",
        "--key", f"ed25519:1={TH_KEY}", "--group", "mou", "--name", "Thailand",
    )  # fmt: skip
    assert out == "added th; directory version 1\n"
    assert ok("directory", d, "show").splitlines() == [
        "directory version 1",
        "node  country  status  groups  base url                keys",
        "----  -------  ------  ------  ----------------------  ---------",
        "th    TH       active  mou     http://th.example:8080  ed25519:1",
    ]

    out = ok("directory", d, "update", "th", "--group", "no_mou", "--group", "asean")
    assert out == "updated th; directory version 2\n"
    [th] = shown(d)["members"]
    # only what was given changed; the rest is kept
    assert th == {
        "node_id": "th",
        "country": "TH",
        "name": "Thailand",
        "base_url": "http://th.example:8080",
        "keys": {"ed25519:1": {"key": TH_KEY}},
        "groups": ["asean", "no_mou"],
        "status": "active",
        "key_sources": {"ed25519:1": "operator"},  # where each key came from: --key
    }

    assert ok("directory", d, "suspend", "th") == "suspended th; directory version 3\n"
    assert shown(d)["members"][0]["status"] == "suspended"
    out = ok("directory", d, "update", "th", "--status", "active", "--json")
    assert json.loads(out)["version"] == 4 and json.loads(out)["member"]["status"] == "active"
    assert shown(d)["version"] == 4


def test_directory_refuses_bad_input_and_changes_nothing(
    tmp_path: Path, database_url: DatabaseUrlFactory
) -> None:
    d = hub_dir(tmp_path, database_url)
    key = f"ed25519:1={TH_KEY}"
    ok(
        "directory",
        d,
        "add",
        "th",
        "--base-url",
        "http://th.example",
        "--country",
        "TH",
        "--key",
        key,
    )
    before = shown(d)
    add = ("directory", d, "add")
    vn = ("vn", "--base-url", "http://vn.example", "--country", "VN")
    bad_key = "error: key 'ed25519:{}' must be ed25519:<id> with a base64url 32-byte Ed25519 key"
    cases: list[tuple[tuple[str | Path, ...], str]] = [
        (
            (*add, "th", "--base-url", "http://x.example", "--country", "TH", "--key", key),
            "error: th is already a member; use 'directory update'",
        ),
        (
            ("directory", d, "update", "vn", "--name", "Vietnam"),
            "error: vn is not a member; use 'directory add'",
        ),
        (("directory", d, "suspend", "vn"), "error: vn is not a member"),
        (
            (*add, "vn", "--country", "VN", "--key", key),
            "error: add needs --base-url and --country",
        ),
        ((*add, *vn), "error: a member needs at least one key (--key or --fetch)"),
        (
            (*add, *vn, "--key", "rsa:1=abc"),
            "error: --key must look like ed25519:1=<base64url key>, not 'rsa:1=abc'",
        ),
        ((*add, *vn, "--key", "ed25519:1"), "error: --key ed25519:1 has no key value"),
        # Refused before they reach the signed directory, where every node would trip on them:
        ((*add, *vn, "--key", "ed25519:1=!!!"), bad_key.format(1)),
        ((*add, *vn, "--key", "ed25519:1=AAAA"), bad_key.format(1)),
        (("directory", d, "update", "th", "--key", "ed25519:2=short"), bad_key.format(2)),
        (
            (*add, "vn", "--base-url", "http://vn.example", "--country", "VNM", "--key", key),
            "error: country 'VNM' is not an ISO 3166 alpha-2 code",
        ),
        (
            (*add, "VN", "--base-url", "http://vn.example", "--country", "VN", "--key", key),
            "error: node id 'VN' must match [a-z][a-z0-9_]{1,31}",
        ),
        (
            (*add, "vn", "--base-url", "vn.example", "--country", "VN", "--key", key),
            "error: base URL 'vn.example' must be http:// or https://",
        ),
    ]
    for args, message in cases:
        assert fails(*args) == message, args
    assert shown(d) == before


async def test_directory_fetch_takes_the_keys_a_node_publishes(
    node_factory: NodeFactory,
) -> None:
    """``--fetch`` reads the member's signed identity document (also after a rotation)."""
    hub = await node_factory("cn", is_hub=True)
    th = await node_factory("th")
    d = hub.data_dir

    def run(*args: str | Path) -> Result:  # in a thread: the command runs its own event loop
        return CliRunner().invoke(cli, [str(a) for a in args])

    add = ("directory", d, "add", "th", "--base-url", th.url, "--country", "TH", "--fetch")
    result = await asyncio.to_thread(run, *add)
    assert result.exit_code == 0, result.stderr
    member = hub.runtime.directory.get("th")
    assert member is not None and member.keys == {"ed25519:1": {"key": TH_KEY, "valid_until": None}}

    wrong = ("directory", d, "add", "vn", "--base-url", th.url, "--country", "VN", "--fetch")
    result = await asyncio.to_thread(run, *wrong)
    assert (result.exit_code, result.stderr) == (1, f"error: {th.url} is not node 'vn'\n")

    rt = th.runtime
    rotated_at = rt.clock()
    rt.keys.rotate(rotated_at).save(rt.data_dir / KEY_FILE)
    rt.reload_keys()
    result = await asyncio.to_thread(run, "directory", d, "update", "th", "--fetch")
    assert result.exit_code == 0, result.stderr
    member = hub.runtime.directory.get("th")
    assert member is not None
    assert member.keys == {
        "ed25519:1": {"key": TH_KEY, "expired_at": rotated_at},
        "ed25519:2": {"key": b64url_encode(rt.keys.active.public), "valid_until": None},
    }


# -- cattc keys rotate ---------------------------------------------------------------------


def test_keys_rotate(tmp_path: Path, database_url: DatabaseUrlFactory) -> None:
    data_dir, _, _ = make_node_dir(tmp_path, "th", database_url("th"))
    path = data_dir / KEY_FILE
    before = KeyStore.load(path)

    out = ok("keys", data_dir, "rotate")
    assert out == (
        "new signing key ed25519:2; retired ed25519:1. "
        "Restart 'cattc serve' so it signs with the new key.\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in data_dir.iterdir() if p.name.startswith(KEY_FILE)) == [KEY_FILE]
    after = KeyStore.load(path)
    assert after.active.key_id == "2" and after.active.public != before.active.public
    [old] = after.old
    assert (old.key_id, old.public) == ("1", before.active.public)
    assert after.active.created >= old.expired_at >= before.active.created

    data = json.loads(ok("keys", data_dir, "rotate", "--json"))
    assert data == {
        "active": "ed25519:3",
        "old": ["ed25519:1", "ed25519:2"],
        "directory_version": None,  # not a hub: no directory to publish
    }
    # Each retired key signed its hand-over to the next.
    assert [(t["old"], t["new"]["name"]) for t in KeyStore.load(path).transitions] == [
        ("ed25519:1", "ed25519:2"),
        ("ed25519:2", "ed25519:3"),
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    shown_keys = ok("keys", data_dir, "show").splitlines()
    assert [line.split()[0] for line in shown_keys] == ["ed25519:3", "ed25519:1", "ed25519:2"]
    assert shown_keys[0].endswith("(active)") and "(expired " in shown_keys[1]

    # A key file others can read is refused, and left as it was.
    path.chmod(0o644)
    assert fails("keys", data_dir, "rotate").startswith("error: key file signing_keys.json is ")
    path.chmod(0o600)
    assert KeyStore.load(path).active.key_id == "3"


# -- cattc verify -------------------------------------------------------------------------


def tamper(data_dir: Path, listing_id: str, **values: Any) -> None:
    rt = open_runtime(data_dir)
    try:
        with Session(rt.engine) as session, session.begin():
            row = session.scalars(
                select(RemoteListingRow).where(RemoteListingRow.listing_id == listing_id)
            ).one()
            for name, value in values.items():
                setattr(row, name, value)
    finally:
        rt.close()


async def test_verify_exit_codes(node_factory: NodeFactory) -> None:
    net = await start_network(node_factory, ["th"], load_sample=False)
    load_records(net.nodes["th"], sample_records("th")[:6])
    run = await net.hub.sync.sync_peer("th", force=True)
    assert run is not None and run.error is None
    hub = net.hub.data_dir
    held = sorted(r.listing_id for r in _rows(net.hub.data_dir))
    n = len(held)
    assert n >= 4

    assert ok("verify", hub) == f"verified {n} of {n} stored summaries, 0 bad\n"
    # verify reads the copies a batch at a time (all at once took 2.9 GB of 1 MB copies)
    store = RemoteStore(net.hub.runtime.engine)
    in_batches = [(r.origin, r.listing_id) for r in store.iter_signed(batch=2)]
    assert in_batches == [(r.origin, r.listing_id) for r in store.held()]

    # 1. the signed bytes altered (one field of the summary)
    first = next(r for r in _rows(hub) if r.listing_id == held[0])
    obj = json.loads(first.signed_bytes)
    obj["listing"]["fields"]["title"] = {"en": "Something else entirely"}
    tamper(hub, held[0], signed_bytes=canonical_bytes(obj).decode())
    result = cattc("verify", hub)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"th/{held[0]}: bad signature by th (ed25519:1)",
        f"verified {n - 1} of {n} stored summaries, 1 bad",
    ]
    # 2. the row no longer says what its signed bytes say
    tamper(hub, held[1], version=99)
    # 3. bytes that are not a signed object at all
    tamper(hub, held[2], signed_bytes="[]")
    # 4. bytes that are not JSON
    tamper(hub, held[3], signed_bytes="{not json")
    result = cattc("verify", hub, "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert (report["total"], report["ok"]) == (n, n - 4)
    assert [(b["origin"], b["listing_id"]) for b in report["bad"]] == [
        ("th", lid) for lid in held[:4]
    ]
    assert "does not match" in report["bad"][1]["reason"]


def _rows(data_dir: Path) -> list[RemoteListingRow]:
    rt = open_runtime(data_dir)
    try:
        with Session(rt.engine) as session:
            rows = list(session.scalars(select(RemoteListingRow)))
            session.expunge_all()
            return rows
    finally:
        rt.close()


def test_matches_lists_a_notice_whatever_its_counterpart_title_holds(
    tmp_path: Path, database_url: DatabaseUrlFactory
) -> None:
    """A counterpart's fields are its owner's, passed on by the hub as they came: a title
    that was a string, not a map of languages, made 'cattc matches' fail with an
    unexpected AttributeError until the notice left its --limit."""
    member, _, _ = make_node_dir(tmp_path, "th", database_url("th"))
    rt = open_runtime(member)
    titles: list[Any] = ["Plain string", {"th": "ไทย"}, ["a", "list"], None, {"en": 5}]
    try:
        with Session(rt.engine) as session, session.begin():
            for n, title in enumerate(titles):
                fields = {} if title is None else {"title": title}
                notice = {
                    "ts": 1_790_000_000_000 + n,
                    "own_listing": {"id": f"th-req-{n}"},
                    "counterpart": {
                        "owner": "la",
                        "listing_id": f"la-off-{n}",
                        "descriptor": f"tech_offer from LA #{n}",
                        "fields": fields,
                    },
                    "score": 0.5,
                }
                row = InboxRow(
                    origin="cn", type="match_notice", received_at=0, obj=json.dumps(notice)
                )
                session.add(row)
    finally:
        rt.close()
    lines = ok("matches", member).splitlines()[2:]
    shown = [line.split("  ")[-1].strip() for line in reversed(lines)]
    assert shown == [
        "Plain string",
        "ไทย",
        "tech_offer from LA #2",
        "tech_offer from LA #3",
        "tech_offer from LA #4",
    ]
