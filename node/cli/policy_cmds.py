"""``cattc policy``: show, check, diff, apply and explain the node's sharing policy."""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path
from typing import Any

import click

from node.cli.output import data_dir_group, emit, fail, json_option, runtime
from node.config import POLICY_FILE
from node.services.errors import ServiceError
from node.services.policy import InvalidPolicy
from node.services.policy_ops import diff_against_active, diff_to_json, explain_listing
from policies.diff import format_diff_table
from policies.model import STAR
from protocol.timeutil import ms_to_iso

policy_file = click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))


def _node_id(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,31}", value):
        raise click.BadParameter(f"{value!r} is not a node id (lower case, e.g. th)")
    return value


def _invalid(exc: InvalidPolicy) -> None:
    for issue in exc.issues:
        click.echo(f"  {issue}", err=True)
    fail(f"policy is invalid ({len(exc.issues)} problem(s)); nothing was changed")


policy = data_dir_group("policy", "Show, check, diff, apply and explain the sharing policy.")


@policy.command()
@json_option
@click.pass_obj
def show(data_dir: Path, as_json: bool) -> None:
    """Print the active policy and its version."""
    with runtime(data_dir) as rt:
        current = rt.policy.active()
    emit(
        as_json,
        current.to_json(),
        lambda d: (
            f"# version {d['version']} by {d['author']} at {ms_to_iso(d['created'])}, "
            f"sha256 {d['digest'][:16]}\n{d['text']}"
        ).rstrip(),
    )


@policy.command()
@policy_file
@json_option
@click.pass_obj
def check(data_dir: Path, file: Path, as_json: bool) -> None:
    """Validate FILE without applying it."""
    with runtime(data_dir) as rt:
        try:
            rt.policy.check(file.read_text(encoding="utf-8"))
        except InvalidPolicy as exc:
            if as_json:
                click.echo(json.dumps({"valid": False, "issues": exc.issues}, indent=2))
                raise SystemExit(1) from exc
            _invalid(exc)
    emit(as_json, {"valid": True, "issues": []}, lambda _: f"{file}: valid")


@policy.command()
@policy_file
@json_option
@click.pass_obj
def diff(data_dir: Path, file: Path, as_json: bool) -> None:
    """Show, per audience, what applying FILE would change."""
    with runtime(data_dir) as rt:
        try:
            diffs = diff_against_active(rt, file.read_text(encoding="utf-8"))
        except InvalidPolicy as exc:
            _invalid(exc)
    emit(as_json, diff_to_json(diffs), lambda _: format_diff_table(diffs))


@policy.command()
@policy_file
@click.option("--author", default=None, help="Who applies it (default: the OS user).")
@json_option
@click.pass_obj
def apply(data_dir: Path, file: Path, author: str | None, as_json: bool) -> None:
    """Make FILE the active policy (a new version); an invalid file changes nothing."""
    text = file.read_text(encoding="utf-8")
    with runtime(data_dir) as rt:
        try:
            version = rt.policy.apply(text, author or getpass.getuser())
        except InvalidPolicy as exc:
            _invalid(exc)
    (data_dir / POLICY_FILE).write_text(text, encoding="utf-8")
    data = {k: v for k, v in version.to_json().items() if k != "text"}
    emit(
        as_json,
        data,
        lambda d: (
            f"policy version {d['version']} is active (sha256 {d['digest'][:16]}); "
            "readers get the new views and retractions at their next sync"
        ),
    )


def _audience(value: str) -> str:
    return value if value == STAR else _node_id(value)


@policy.command()
@click.argument("listing_id")
@click.option(
    "--audience",
    required=True,
    callback=lambda _ctx, _param, value: _audience(value),
    help="A node id, e.g. th; or '*' for the public (what the hub's public search shows).",
)
@json_option
@click.pass_obj
def explain(data_dir: Path, listing_id: str, audience: str, as_json: bool) -> None:
    """Show the exact view AUDIENCE gets of LISTING_ID and the rule behind it, or why none.

    With --audience '*' it is the view the hub's public search shows, and the only one.
    """
    with runtime(data_dir) as rt:
        try:
            result = explain_listing(rt, listing_id, audience)
        except ServiceError as exc:
            fail(exc.message)

    def render(d: dict[str, Any]) -> str:
        lines = list(d["explanation"])
        if audience == STAR:
            lines.append(
                "public search at the hub shows this view's listing"
                if d["view"] is not None
                else "public search at the hub does not show this listing"
            )
        if d["view"] is not None:
            lines.append("exact signed view:")
            lines.append(json.dumps(d["view"], ensure_ascii=False, indent=2, sort_keys=True))
        return "\n".join(lines)

    emit(as_json, result, render)
