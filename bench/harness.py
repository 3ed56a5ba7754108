"""What several benchmarks set up the same way: a PostgreSQL schema of their own, and
clients that keep a search endpoint busy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
from sqlalchemy import text

from node.storage.db import DatabaseUnavailable, check_connection, make_engine


def serve_env() -> dict[str, str]:
    """The environment of a bench's ``cattc serve`` processes: logs at WARNING, and the
    hub matching lexically (``CATTC_BENCH_SEMANTIC``, default ``off``): with its default
    model a hub encodes in the background for hours at these sizes (docs/hub-guide.md),
    which these benches do not measure (bench.match_semantic does)."""
    return {
        **os.environ,
        "CATTC_LOG_LEVEL": os.environ.get("CATTC_BENCH_LOG_LEVEL", "WARNING"),
        "CATTC_SEMANTIC": os.environ.get("CATTC_BENCH_SEMANTIC", "off"),
    }


@contextlib.contextmanager
def postgres_schema(url: str, prefix: str, *, required: bool = False) -> Iterator[str | None]:
    """A URL to a fresh schema (dropped afterwards) of the PostgreSQL database at ``url``;
    None when ``url`` is empty, or cannot be reached and ``required`` is false."""
    if not url:
        yield None
        return
    admin = make_engine(url)
    try:
        check_connection(admin)
    except DatabaseUnavailable:
        admin.dispose()
        if required:
            raise
        yield None
        return
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


async def search_clients(
    url: str, clients: int, queries: list[dict[str, Any]], requests: int
) -> tuple[list[float], float]:
    """``requests`` GETs of ``url`` (query parameters taken from ``queries`` in turn) by
    ``clients`` clients, each sending its next when the last is answered: the sorted
    times (ms) and the wall seconds of them all."""
    times: list[float] = []
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(queries[i % len(queries)])

    async def client(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            params = queue.get_nowait()
            started = time.perf_counter()
            async with http.get(url, params=params) as resp:
                body = await resp.json()
                assert resp.status == 200, body
            times.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return sorted(times), time.perf_counter() - started
