"""``cattc init``, ``serve`` and ``status``: creating, running and inspecting a node."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from yarl import URL

from node.cli.output import data_dir_argument, emit, fail, json_option, runtime, table
from node.config import POLICY_FILE, TOKEN_FILE, ConfigError, NodeConfig, load_config
from node.services.heap import limit_arenas
from node.services.setup import SetupError, init_node
from node.services.status import node_status
from node.storage.db import DatabaseUnavailable, describe_database_error
from node.web.app import create_app
from node.web.server import GuardedSite, ServeError, bind, lock_data_dir, reserve, run_server
from node.web.workers import MAX_WORKERS, Supervisor, log_format, migrate_database


@click.command()
@data_dir_argument
@click.option("--node-id", required=True, help="This node's id, e.g. vn (lower case).")
@click.option("--country", required=True, help="ISO 3166 alpha-2 code, e.g. VN.")
@click.option("--name", default="", help="Human name of the center.")
@click.option("--base-url", default="", help="URL other nodes reach this node at.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on.",
)
@click.option(
    "--database-url",
    default="",
    envvar="CATTC_DATABASE_URL",
    help="PostgreSQL URL (or CATTC_DATABASE_URL); SQLite in DATA_DIR if empty.",
)
@click.option("--hub-url", default="", help="Base URL of the CATTC hub.")
@click.option("--hub-key", default="", help="The hub's Ed25519 public key (base64url), pinned.")
@click.option("--hub", "is_hub", is_flag=True, help="This node is the CATTC hub.")
def init(data_dir: Path, **opts: Any) -> None:
    """Create a node in DATA_DIR: config, signing key, admin token, default policy.

    The database is reached first; if anything fails, nothing is left behind."""
    for option in ("base_url", "hub_url"):
        _check_http_url(opts[option], option)
    try:
        config = NodeConfig(
            node_id=opts["node_id"],
            country=opts["country"].upper(),
            name=opts["name"],
            base_url=opts["base_url"],
            host=opts["host"],
            port=opts["port"],
            database_url=opts["database_url"],
            hub_url=opts["hub_url"],
            hub_key=opts["hub_key"],
            is_hub=opts["is_hub"],
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        fail(f"invalid --{str(err['loc'][0]).replace('_', '-')}: {err['msg']}")
    try:
        result = init_node(data_dir, config)
    except SetupError as exc:
        fail(str(exc))
    key = result.keys.active
    click.echo(f"node {config.node_id} ({config.country}) created in {data_dir}")
    click.echo(f"signing key: {key.name}")
    click.echo(
        f"sharing policy: default, version {result.policy_version} ({data_dir / POLICY_FILE})"
    )
    click.echo(f"admin token (shown once; also in {data_dir / TOKEN_FILE}, mode 0600):")
    click.echo(f"  {result.admin_token}")


def _check_http_url(value: str, option: str) -> None:
    """An empty value, or an http(s) URL with a host."""
    if not value:
        return
    try:
        url = URL(value)
        good = url.scheme in ("http", "https") and bool(url.host)
    except ValueError:
        good = False
    if not good:
        flag = "--" + option.replace("_", "-")
        fail(f"{flag} {value!r} is not a URL; give one like https://node.example.org")


@click.command()
@data_dir_argument
@click.option("--host", default=None, help="Address to listen on (default: from config).")
@click.option(
    "--port", default=None, type=click.IntRange(0, 65535), help="Port (default: from config)."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, MAX_WORKERS),
    help="Processes serving the one address (SO_REUSEPORT); more than 1 needs PostgreSQL.",
)
def serve(data_dir: Path, host: str | None, port: int | None, workers: int) -> None:
    """Run the node's HTTP server until interrupted.

    With --workers N (N > 1, PostgreSQL only) a supervisor runs N worker processes on the
    one address and starts again any that dies; SIGINT or SIGTERM stops them all."""
    limit_arenas()  # before any thread: see node.services.heap
    try:
        config = load_config(data_dir)
    except ConfigError as exc:
        fail(str(exc))
    who = "supervisor" if workers > 1 else ""
    logging.basicConfig(
        level=config.log_level.upper(),
        format=log_format(who) if who else "%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    host = host or config.host
    port = config.port if port is None else port
    url = config.resolved_database_url(data_dir)
    if workers > 1:
        if url.startswith("sqlite"):
            fail(
                f"--workers {workers} needs PostgreSQL: a SQLite database is served by one "
                "process; set database_url in node.toml, or serve with --workers 1"
            )
        _serve_workers(data_dir, config, host, port, workers)
        return
    try:
        # Held until the process ends: a second server on one SQLite file would race it.
        lock = lock_data_dir(data_dir) if url.startswith("sqlite") else None
        sock = bind(host, port)
    except ServeError as exc:
        fail(str(exc))

    def ready(site: GuardedSite) -> None:
        click.echo(f"node {config.node_id} serving on {site.name} (Ctrl-C to stop)")

    app = create_app(data_dir, config=config)
    try:
        asyncio.run(run_server(app, sock, config, ready=ready))
    except (SQLAlchemyError, OSError) as exc:
        logging.getLogger(__name__).debug("start failed", exc_info=True)
        fail(f"node {config.node_id} stopped: {exc.__class__.__name__}: {exc}")
    finally:
        sock.close()
        if lock is not None:
            os.close(lock)


def _serve_workers(data_dir: Path, config: NodeConfig, host: str, port: int, count: int) -> None:
    """``serve --workers N`` (N > 1, PostgreSQL): hold the address, migrate once, run the
    workers under a supervisor (node/web/workers.py)."""
    url = config.resolved_database_url(data_dir)
    with contextlib.ExitStack() as held:
        try:
            # One supervisor per data directory: a second one on the same port would join
            # the first's SO_REUSEPORT group unnoticed.
            held.callback(os.close, lock_data_dir(data_dir))
            address = held.enter_context(reserve(host, port))
            migrate_database(url)
        except (ServeError, DatabaseUnavailable) as exc:
            fail(str(exc))
        except DBAPIError as exc:
            fail(describe_database_error(exc, url))

        def ready(name: str) -> None:
            click.echo(
                f"node {config.node_id} serving on {name} with {count} workers (Ctrl-C to stop)"
            )

        bound_port = address.getsockname()[1]
        supervisor = Supervisor(data_dir, config, host, bound_port, count, on_ready=ready)
        try:
            supervisor.run()
        except ServeError as exc:
            fail(f"node {config.node_id} stopped: {exc}")


@click.command()
@data_dir_argument
@json_option
def status(data_dir: Path, as_json: bool) -> None:
    """Show who this node is and what it holds."""
    with runtime(data_dir) as rt:
        data = node_status(rt)

    def render(d: dict[str, Any]) -> str:
        head = [
            f"node      {d['node_id']} ({d['country']}) {d['name']}",
            f"base url  {d['base_url']}",
            f"key       {d['key']}",
            f"changes   {d['change_log_head']}",
            "",
        ]
        rows = [(cat, n) for cat, n in sorted(d["listings"].items())]
        return "\n".join(head) + table(["category", "listings"], rows)

    emit(as_json, data, render)
