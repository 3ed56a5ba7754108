"""``cattc users``: the node's console accounts from the command line (add, list,
disable, enable, set-role, set-password). Each change is in the audit log as made by
``cli:<operating system user>``; a change of role, a disabling or a new password ends
the user's console sessions."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from node.cli.output import data_dir_group, emit, fail, json_option, runtime, table
from node.ui import accounts
from node.ui.accounts import ROLES, AccountError
from node.ui.audit import cli_actor
from protocol.timeutil import ms_to_iso

users = data_dir_group("users", "Console accounts: add, list, disable, enable, set-role.")

role_choice = click.Choice(ROLES)
stdin_option = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of asking twice.",
)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if not password:
            fail("no password on standard input; pipe one line, e.g. from a password manager")
        return password.removesuffix("\r")
    value: str = click.prompt(
        "Password (at least 10 characters)",
        hide_input=True,
        confirmation_prompt="Password again",
        err=True,
    )
    return value


@users.command()
@click.argument("name")
@click.option("--role", type=role_choice, required=True, help="What the user may do.")
@stdin_option
@json_option
@click.pass_obj
def add(data_dir: Path, name: str, role: str, password_stdin: bool, as_json: bool) -> None:
    """Add the user NAME with a password (asked twice, or read with --password-stdin).

    Viewers read; editors also change listings, sharing rules and answers to interest;
    admins also manage users.
    """
    try:
        accounts.check_new(name, "x" * 10, role)
    except AccountError as exc:
        fail(f"{exc}; choose another name")
    with runtime(data_dir) as rt:
        if accounts.find_user(rt.engine, name) is not None:
            fail(f"a user named {name} exists already; choose another name")
        password = _password(password_stdin)
        try:
            user = accounts.create_user(
                rt.engine, name, password, role, now_ms=rt.clock(), actor=cli_actor()
            )
        except AccountError as exc:
            fail(str(exc))
    emit(as_json, _json(user), lambda d: f"added {d['name']} ({d['role']})")


@users.command("list")
@json_option
@click.pass_obj
def list_cmd(data_dir: Path, as_json: bool) -> None:
    """Every console user, with role and status."""
    with runtime(data_dir) as rt:
        found = accounts.list_users(rt.engine)
    emit(
        as_json,
        [_json(u) for u in found],
        lambda d: (
            table(
                ["name", "role", "status", "added"],
                [(u["name"], u["role"], u["status"], u["added"]) for u in d],
            )
            if d
            else "no users yet; add one with 'cattc users DATA_DIR add NAME --role admin'"
        ),
    )


@users.command()
@click.argument("name")
@json_option
@click.pass_obj
def disable(data_dir: Path, name: str, as_json: bool) -> None:
    """Disable NAME: signed out now, and cannot sign in (the audit log keeps the name)."""
    _change(data_dir, as_json, "disabled", accounts.set_disabled, name, True)


@users.command()
@click.argument("name")
@json_option
@click.pass_obj
def enable(data_dir: Path, name: str, as_json: bool) -> None:
    """Let the disabled user NAME sign in again."""
    _change(data_dir, as_json, "enabled", accounts.set_disabled, name, False)


@users.command("set-role")
@click.argument("name")
@click.argument("role", type=role_choice)
@json_option
@click.pass_obj
def set_role(data_dir: Path, name: str, role: str, as_json: bool) -> None:
    """Give NAME the role ROLE (they sign in again)."""
    _change(data_dir, as_json, f"now {role}", accounts.set_role, name, role)


@users.command("set-password")
@click.argument("name")
@stdin_option
@json_option
@click.pass_obj
def set_password(data_dir: Path, name: str, password_stdin: bool, as_json: bool) -> None:
    """Give NAME a new password (asked twice, or read with --password-stdin)."""
    with runtime(data_dir) as rt:
        if accounts.find_user(rt.engine, name) is None:
            fail(f"there is no user named {name}")
        password = _password(password_stdin)
        try:
            accounts.set_password(rt.engine, name, password, actor=cli_actor(), now_ms=rt.clock())
            user = accounts.find_user(rt.engine, name)
        except AccountError as exc:
            fail(str(exc))
    assert user is not None
    emit(as_json, _json(user), lambda d: f"{d['name']}: new password set")


def _change(
    data_dir: Path,
    as_json: bool,
    what: str,
    fn: Callable[..., accounts.StaffUser],
    name: str,
    value: object,
) -> None:
    with runtime(data_dir) as rt:
        try:
            user = fn(rt.engine, name, value, actor=cli_actor(), now_ms=rt.clock())
        except AccountError as exc:
            fail(str(exc))
    emit(as_json, _json(user), lambda d: f"{d['name']}: {what}")


def _json(user: accounts.StaffUser) -> dict[str, str]:
    return {
        "name": user.name,
        "role": user.role,
        "status": "disabled" if user.disabled else "active",
        "added": ms_to_iso(user.created - user.created % 1000),
    }
