"""``cattc users``: accounts made and changed from the command line, on a real data
directory: the password asked twice or read from stdin, one-line errors, the audit log
naming ``cli:<user>``, and a change of role or a disabling ending the user's sessions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.cli.main import cli
from node.runtime import open_runtime
from node.storage.models import AuditRow
from node.ui.accounts import authenticate
from node.ui.audit import cli_actor
from node.ui.sessions import find_session, open_session
from tests.nodes import make_node_dir

PASSWORD = "a long enough password"


def cattc(*args: str | Path, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], input=stdin)


def node_dir(tmp_path: Path, database_url: Callable[[str], str]) -> Path:
    data_dir, _cfg, _token = make_node_dir(tmp_path, "th", database_url("th"))
    return data_dir


def test_add_list_and_change(tmp_path: Path, database_url: Callable[[str], str]) -> None:
    data_dir = node_dir(tmp_path, database_url)
    added = cattc(
        "users",
        data_dir,
        "add",
        "ada",
        "--role",
        "admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    assert added.stdout.strip() == "added ada (admin)"
    asked = cattc(
        "users", data_dir, "add", "somchai", "--role", "editor", stdin=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert asked.exit_code == 0, asked.output
    assert "Password again" in asked.stderr and PASSWORD not in asked.output
    listed = cattc("users", data_dir, "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(u["name"], u["role"], u["status"]) for u in json.loads(listed.stdout)] == [
        ("ada", "admin", "active"),
        ("somchai", "editor", "active"),
    ]
    text = cattc("users", data_dir, "list").stdout.splitlines()
    assert text[0].split() == ["name", "role", "status", "added"] and text[3].startswith("somchai")

    rt = open_runtime(data_dir)
    try:
        somchai = authenticate(rt.engine, "somchai", PASSWORD)
        assert somchai is not None
        token, _ = open_session(rt.engine, somchai.id, now_ms=rt.clock())
        assert cattc("users", data_dir, "set-role", "somchai", "viewer").exit_code == 0
        assert find_session(rt.engine, token, now_ms=rt.clock()) is None  # ended
        token, _ = open_session(rt.engine, somchai.id, now_ms=rt.clock())
        result = cattc("users", data_dir, "disable", "somchai")
        assert result.exit_code == 0 and result.stdout.strip() == "somchai: disabled"
        assert find_session(rt.engine, token, now_ms=rt.clock()) is None
        assert authenticate(rt.engine, "somchai", PASSWORD) is None
        assert cattc("users", data_dir, "enable", "somchai").exit_code == 0
        assert authenticate(rt.engine, "somchai", PASSWORD) is not None
        new = "another long password"
        assert (
            cattc(
                "users", data_dir, "set-password", "somchai", "--password-stdin", stdin=new
            ).exit_code
            == 0
        )
        assert authenticate(rt.engine, "somchai", PASSWORD) is None
        assert authenticate(rt.engine, "somchai", new) is not None
        with Session(rt.engine) as s:
            log = [
                (r.actor, r.action, r.target, r.detail)
                for r in s.scalars(select(AuditRow).order_by(AuditRow.id))
            ]
    finally:
        rt.close()
    me = cli_actor()
    assert me.startswith("cli:")
    assert log == [
        (me, "user.create", "ada", "admin"),
        (me, "user.create", "somchai", "editor"),
        (me, "user.role", "somchai", "editor -> viewer"),
        (me, "user.disable", "somchai", ""),
        (me, "user.enable", "somchai", ""),
        (me, "user.password", "somchai", ""),
    ]


def test_refusals_are_one_line(tmp_path: Path, database_url: Callable[[str], str]) -> None:
    data_dir = node_dir(tmp_path, database_url)
    ok = cattc(
        "users", data_dir, "add", "ada", "--role", "admin", "--password-stdin", stdin=PASSWORD
    )
    assert ok.exit_code == 0, ok.output
    cases = [
        (
            ("add", "ada", "--role", "viewer", "--password-stdin"),
            PASSWORD,
            "a user named ada exists already",
        ),
        (("add", "bad name", "--role", "viewer", "--password-stdin"), PASSWORD, "1-64 letters"),
        (
            ("add", "bob", "--role", "viewer", "--password-stdin"),
            "short\n",
            "at least 10 characters",
        ),
        (
            ("add", "bob", "--role", "viewer", "--password-stdin"),
            "",
            "no password on standard input",
        ),
        (("add", "bob", "--role", "root", "--password-stdin"), PASSWORD, "'root' is not one of"),
        (("disable", "nobody"), None, "there is no user named nobody"),
        (("disable", "ada"), None, "ada is the last enabled admin"),
        (("set-role", "ada", "viewer"), None, "ada is the last enabled admin"),
        (("set-role", "ada", "boss"), None, "'boss' is not one of"),
    ]
    for args, stdin, words in cases:
        result = cattc("users", data_dir, *args, stdin=stdin)
        assert result.exit_code != 0, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (
            args,
            result.stderr,
        )
    listed = json.loads(cattc("users", data_dir, "list", "--json").stdout)
    assert [(u["name"], u["role"], u["status"]) for u in listed] == [("ada", "admin", "active")]
