"""Generate docs/cli-reference.md from the commands' own ``--help`` (a test keeps it exact).

Run ``python -m node.cli.reference > docs/cli-reference.md`` after changing a command.
"""

from __future__ import annotations

import click

from node.cli.main import cli


def _walk(cmd: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    out = [(path, cmd)]
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            out.extend(_walk(cmd.commands[name], [*path, name]))
    return out


def reference() -> str:
    lines = [
        "# `cattc` command reference",
        "",
        "Generated from the commands' `--help` by `python -m node.cli.reference`;",
        "`tests/node/test_cli_reference.py` fails when this file and the code disagree.",
        "",
    ]
    for path, cmd in _walk(cli, ["cattc"]):
        ctx = click.Context(cmd, info_name=" ".join(path), terminal_width=100)
        lines += [f"## {' '.join(path)}", "", "```", cmd.get_help(ctx), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference(), end="")
