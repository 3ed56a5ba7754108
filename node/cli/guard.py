"""The CLI's one guard: every failure of every command ends in one line on stderr,
``error: <what went wrong>; <what to do>``, and a non-zero exit, never a traceback.

Commands raise ``CliFailure`` for the failures they foresee. Whatever else escapes a
command (a database that went away, a file that is not UTF-8, a peer that hung up, a
bug) is caught once, here, around the whole command group: known kinds get a specific
sentence, the rest a generic one that points at ``--debug`` (or ``CATTC_DEBUG=1``),
which lets the traceback through for a bug report. Usage errors (an unknown option, a
DATA_DIR that is a file) become one line too, with the command whose ``--help`` to read.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

logger = logging.getLogger(__name__)
DEBUG_ENV = "CATTC_DEBUG"


class CliFailure(click.ClickException):
    """Printed as one line: 'error: <what went wrong>; <what to do>'."""

    def format_message(self) -> str:
        return self.message

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {one_line(self.message)}", err=True)


class CliUsageFailure(CliFailure):
    """A command line click could not parse: one line too, and exit status 2 as click's."""

    exit_code = 2


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def explain(error: BaseException) -> str | None:
    """A sentence for a failure whose kind is known; None for anything else."""
    # Imported here, when a command has failed, not when ``cattc`` starts (see main.py):
    # whatever raised the error has loaded its module already.
    import asyncio

    import aiohttp
    from pydantic import ValidationError
    from sqlalchemy import exc as sa_exc

    from node.config import ConfigError
    from node.services.setup import SetupError
    from node.storage.db import DatabaseUnavailable, describe_database_error
    from protocol.errors import ProtocolError
    from protocol.keys import KeyFileError
    from sync.client import PeerError

    if isinstance(error, ProtocolError):
        return error.message
    if isinstance(error, ConfigError | KeyFileError | SetupError | DatabaseUnavailable):
        return str(error)
    if isinstance(error, PeerError):
        return f"{error}; check that the peer is up and its URL"
    if isinstance(error, sa_exc.IntegrityError):
        return (
            f"the database refused a change ({first_line(error.orig or error)}): another "
            "process may have changed the same thing at the same time; try again"
        )
    if isinstance(error, sa_exc.DBAPIError):
        return describe_database_error(error, "")
    if isinstance(error, UnicodeError):
        return f"a file is not UTF-8 text ({first_line(error)}); save it as UTF-8 and retry"
    if isinstance(error, aiohttp.InvalidURL):
        return f"{error.url!s} is not a URL; give one like https://node.example.org"
    if isinstance(error, aiohttp.ClientError | asyncio.TimeoutError):
        return f"network: {first_line(error) or error.__class__.__name__}; is the peer up?"
    if isinstance(error, OSError):
        what = f"{error.strerror or first_line(error)}"
        return f"{what}: {error.filename}" if error.filename else what
    if isinstance(error, ValidationError):
        err = error.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"invalid {where}: {err['msg']}"
    if isinstance(error, MemoryError):
        return "out of memory; free some or give the command less to do at once"
    return None


def one_line(message: str) -> str:
    """``message`` on one line (a driver's message may span several), without
    SQLAlchemy's pointer to its documentation."""
    lines = [ln.strip() for ln in message.splitlines()]
    return " ".join(ln for ln in lines if ln and not ln.startswith("(Background on this error"))


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def describe(error: BaseException) -> str:
    known = explain(error)
    if known is not None:
        return known
    return (
        f"unexpected {error.__class__.__name__}: {first_line(error)}; run it again with "
        f"{DEBUG_ENV}=1 for the details, and report it"
    )


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn whatever escapes into a ``CliFailure`` (see the module docstring)."""
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise  # a group without its command shows its help, as click does
    except click.UsageError as error:
        where = error.ctx.command_path if error.ctx is not None else "cattc"
        raise CliUsageFailure(f"{error.format_message()} (see '{where} --help')") from error
    except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
        raise
    except (KeyboardInterrupt, EOFError):
        raise click.Abort() from None
    except Exception as error:
        if debugging():
            raise
        logger.debug("command failed", exc_info=True)
        raise CliFailure(describe(error)) from error


class GuardedGroup(click.Group):
    """The root ``cattc`` group: parsing and running every command under the guard."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with one_line_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with one_line_errors():
            return super().invoke(ctx)


@contextmanager
def terminated_cleanly() -> Iterator[None]:
    """SIGTERM and SIGHUP end the command as Ctrl-C does, so that its clean-up runs
    (Python's default for them ends the process at once: a backup killed by a cron job's
    ``timeout`` left its staging copy, private key included, beside the archive)."""

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():
        yield  # the command runs inside another program (tests): its signals are its own
        return
    before = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
