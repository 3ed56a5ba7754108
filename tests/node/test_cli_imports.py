"""``node.cli.main`` stays light: it is the ``__main__`` of ``cattc serve``, which every
process started by Python's ``spawn`` (the signature-checking workers of a long pull)
imports again before its first job. Commands load their code when they run."""

from __future__ import annotations

import json
import subprocess
import sys

import click
from click.testing import CliRunner

from node.cli.main import COMMANDS, cli
from tests.paths import PROJECT_ROOT

HEAVY = ("numpy", "scipy", "sqlalchemy", "aiohttp", "pydantic", "nacl", "node.web.app")


def loaded_after(statement: str) -> list[str]:
    show = f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    done = subprocess.run(
        [sys.executable, "-c", f"import json, sys\n{statement}\n{show}"],
        check=False,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stdout)
    return found


def test_importing_the_entry_point_loads_no_command() -> None:
    assert loaded_after("import node.cli.main") == []
    # The measure can fail: a command's module does load them.
    assert "sqlalchemy" in loaded_after("import node.cli.node_cmds")


def test_every_command_is_found_by_name_and_listed() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
        assert f"  {name} " in result.output
    assert cli.get_command(ctx, "nonsense") is None


def test_an_unknown_command_is_one_usage_line() -> None:
    result = CliRunner().invoke(cli, ["nonsense"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: No such command 'nonsense'. (see 'cli --help')"
    ]
