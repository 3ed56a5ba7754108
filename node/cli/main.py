"""Entry point of the ``cattc`` command: every command under one guard (``node.cli.guard``)
so that any failure is one ``error:`` line, never a traceback.

A command's module is imported when that command runs (or its help is shown), not when
``cattc`` starts: this module is also what every worker process that Python's ``spawn``
starts imports again as its ``__main__`` (the signature-checking workers of a long pull),
and importing every command's code there (the web server, the database layer, the
matcher) cost each of them about 60 MB.
"""

from __future__ import annotations

import importlib

import click

from node.cli.guard import GuardedGroup

# name -> (module, attribute)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("node.cli.node_cmds", "init"),
    "serve": ("node.cli.node_cmds", "serve"),
    "status": ("node.cli.node_cmds", "status"),
    "import": ("node.cli.listing_cmds", "import_cmd"),
    "listings": ("node.cli.listing_cmds", "listings"),
    "policy": ("node.cli.policy_cmds", "policy"),
    "directory": ("node.cli.directory_cmds", "directory"),
    "sync": ("node.cli.sync_cmds", "sync"),
    "verify": ("node.cli.sync_cmds", "verify"),
    "keys": ("node.cli.sync_cmds", "keys"),
    "custody": ("node.cli.hub_cmds", "custody"),
    "matches": ("node.cli.hub_cmds", "matches"),
    "eoi": ("node.cli.eoi_cmds", "eoi"),
    "eval": ("node.matching.cli", "eval_cmd"),
    "users": ("node.cli.user_cmds", "users"),
    "shared": ("node.cli.share_cmds", "shared"),
    "backup": ("node.cli.backup_cmds", "backup"),
    "restore": ("node.cli.backup_cmds", "restore"),
}


class LazyGroup(GuardedGroup):
    """The root group, whose commands are imported by name on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        command = getattr(importlib.import_module(where[0]), where[1])
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cattc-federation")
def cli() -> None:
    """Run and operate a CATTC federation node (a national center or the hub)."""


if __name__ == "__main__":
    cli()
