"""CLI output: aligned plain text by default, JSON with --json, one-line failures."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from node.config import ConfigError
from node.runtime import NodeRuntime, open_runtime
from node.services.errors import ServiceError
from protocol.keys import KeyFileError


class CliFailure(click.ClickException):
    """Printed as one line: 'error: <what went wrong>; <what to do>'."""

    def format_message(self) -> str:
        return self.message

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def fail(message: str) -> NoReturn:
    raise CliFailure(message)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_text(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def emit(as_json: bool, data: Any, render: Callable[[Any], str]) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))
    else:
        click.echo(render(data))


@contextmanager
def runtime(data_dir: Path) -> Iterator[NodeRuntime]:
    """Open the node in ``data_dir`` for a CLI command, turning known errors into one line."""
    try:
        rt = open_runtime(data_dir)
    except (ConfigError, KeyFileError) as exc:
        fail(str(exc))
    except Exception as exc:  # database unreachable, migration failure
        fail(f"cannot open the node's database: {exc.__class__.__name__}: {exc}".splitlines()[0])
    try:
        yield rt
    except ServiceError as exc:
        fail(exc.message)
    finally:
        rt.close()


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(fn)


data_dir_argument = click.argument(
    "data_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DATA_DIR"
)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def data_dir_group(name: str, help_text: str) -> click.Group:
    """A command group whose DATA_DIR comes first and is handed to every subcommand
    (``cattc policy DATA_DIR show``), as DESIGN 10 asks of every command."""

    @click.group(name=name, help=help_text)
    @data_dir_argument
    @click.pass_context
    def group(ctx: click.Context, data_dir: Path) -> None:
        ctx.obj = data_dir

    return group
