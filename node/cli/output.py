"""CLI output: aligned plain text by default, JSON with --json, one-line failures."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from node.cli.guard import CliFailure
from node.config import CONFIG_FILE, ConfigError, load_config
from node.runtime import NodeRuntime, open_runtime
from node.services.errors import ServiceError
from node.storage.db import DatabaseUnavailable, describe_database_error
from protocol.keys import KeyFileError


def fail(message: str) -> NoReturn:
    raise CliFailure(message)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_text(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# C0/C1 controls, the bidirectional overrides and marks, the line and paragraph
# separators: a table cell may hold what a peer sent (a refused item's listing id, an
# error), and these would move the cursor, clear the operator's terminal, break a row or
# reorder what it shows (--json escapes the C0 ones itself).
_CONTROLS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    return _CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def emit(as_json: bool, data: Any, render: Callable[[Any], str]) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))
    else:
        click.echo(render(data))


@contextmanager
def runtime(data_dir: Path) -> Iterator[NodeRuntime]:
    """Open the node in ``data_dir`` for a CLI command, turning known errors into one line
    (the database's with its URL; anything else reaches the CLI's guard)."""
    try:
        config = load_config(data_dir)
    except ConfigError as exc:
        fail(str(exc))
    except UnicodeDecodeError as exc:
        fail(f"{data_dir / CONFIG_FILE} is not UTF-8 text ({exc.reason}); save it as UTF-8")
    url = config.resolved_database_url(data_dir)
    try:
        rt = open_runtime(data_dir, config=config)
    except (KeyFileError, DatabaseUnavailable) as exc:
        fail(str(exc))
    except DBAPIError as exc:  # unreachable, refused, locked
        fail(describe_database_error(exc, url))
    try:
        yield rt
    except ServiceError as exc:
        fail(exc.message)
    except (OperationalError, InterfaceError) as exc:  # the database went away, or locked
        fail(describe_database_error(exc, url))
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
