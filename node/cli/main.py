"""Entry point of the ``cattc`` command: every command under one guard (``node.cli.guard``)
so that any failure is one ``error:`` line, never a traceback."""

from __future__ import annotations

import click

from node.cli.backup_cmds import backup, restore
from node.cli.directory_cmds import directory
from node.cli.eoi_cmds import eoi
from node.cli.guard import GuardedGroup
from node.cli.hub_cmds import custody, matches
from node.cli.listing_cmds import import_cmd, listings
from node.cli.node_cmds import init, serve, status
from node.cli.policy_cmds import policy
from node.cli.share_cmds import shared
from node.cli.sync_cmds import keys, sync, verify
from node.cli.user_cmds import users
from node.matching.cli import eval_cmd


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cattc-federation")
def cli() -> None:
    """Run and operate a CATTC federation node (a national center or the hub)."""


cli.add_command(init)
cli.add_command(serve)
cli.add_command(status)
cli.add_command(import_cmd)
cli.add_command(listings)
cli.add_command(policy)
for command in (directory, sync, verify, keys, custody, matches, eoi):
    cli.add_command(command)
cli.add_command(eval_cmd, name="eval")
cli.add_command(users)
cli.add_command(shared)
cli.add_command(backup)
cli.add_command(restore)


if __name__ == "__main__":
    cli()
