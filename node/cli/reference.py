"""Generate docs/cli-reference.md from the commands' own ``--help`` (a test keeps it exact).

Run ``python -m node.cli.reference > docs/cli-reference.md`` after changing a command.
"""

from __future__ import annotations

import click

from node.cli.main import cli


def _walk(
    cmd: click.Command, path: list[str], parent: click.Context | None
) -> list[tuple[list[str], click.Context]]:
    """Every command with a context chained to its parents', as ``cattc ... --help`` has
    (so ``-h`` and the other root settings are inherited exactly as at run time)."""
    ctx = cmd.make_context(path[-1], [], parent=parent, resilient_parsing=True)
    ctx.info_name = " ".join(path) if parent is None else path[-1]
    out = [(path, ctx)]
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None, name
            out.extend(_walk(sub, [*path, name], ctx))
    return out


def reference() -> str:
    lines = [
        "# `cattc` command reference",
        "",
        "Generated from the commands' `--help` by `python -m node.cli.reference`;",
        "`tests/node/test_cli_reference.py` fails when this file and the code disagree.",
        "",
    ]
    for path, ctx in _walk(cli, ["cattc"], None):
        ctx.terminal_width = ctx.max_content_width = 100
        lines += [f"## {' '.join(path)}", "", "```", ctx.command.get_help(ctx), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference(), end="")
