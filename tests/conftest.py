"""Fixtures shared by the whole suite: database engines (SQLite, and PostgreSQL when
CATTC_TEST_POSTGRES_URL is set) and real nodes on loopback ports."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from node.storage.db import make_engine
from tests.nodes import RunningNode, start_node

POSTGRES_URL = os.environ.get("CATTC_TEST_POSTGRES_URL", "")
# The hubs the tests start match lexically (a hub's default, e5 in the background, would
# encode every listing of every test hub: minutes of CPU over the suite, and match lists
# that change while a test reads them). tests/hub/test_semantic_hub.py starts hubs with
# the default; the matcher's tests pass their encoders explicitly.
os.environ.setdefault("CATTC_SEMANTIC", "off")
ENGINES = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]

DatabaseUrlFactory = Callable[[str], str]


def pytest_report_header() -> str:
    where = (
        f" ({POSTGRES_URL})" if POSTGRES_URL else " (set CATTC_TEST_POSTGRES_URL for PostgreSQL)"
    )
    return f"database engines under test: {', '.join(ENGINES)}{where}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for engine in ENGINES:
        passed = [r for r in terminalreporter.stats.get("passed", []) if f"[{engine}" in r.nodeid]
        failed = [r for r in terminalreporter.stats.get("failed", []) if f"[{engine}" in r.nodeid]
        terminalreporter.write_line(
            f"database engine {engine}: {len(passed)} tests passed and {len(failed)} failed"
        )


@pytest.fixture(params=ENGINES)
def db_engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(db_engine_name: str, tmp_path: Path) -> Iterator[DatabaseUrlFactory]:
    """A factory of fresh, empty databases: a SQLite file or a PostgreSQL schema each."""
    schemas: list[str] = []

    def make(name: str) -> str:
        if db_engine_name == "sqlite":
            return f"sqlite:///{tmp_path / (name + '.db')}"
        schema = f"t_{name}_{uuid.uuid4().hex[:12]}"
        schemas.append(schema)
        admin = make_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        sep = "&" if "?" in POSTGRES_URL else "?"
        return f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"

    yield make
    if schemas:
        admin = make_engine(POSTGRES_URL)
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def node_factory(
    tmp_path: Path, database_url: DatabaseUrlFactory
) -> AsyncIterator[Callable[..., Awaitable[RunningNode]]]:
    started: list[RunningNode] = []

    async def start(node_id: str, **config: Any) -> RunningNode:
        node = await start_node(tmp_path, node_id, database_url(node_id), **config)
        started.append(node)
        return node

    yield start
    for node in reversed(started):
        await node.stop()
