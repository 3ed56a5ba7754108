"""Hostile import lines are one bad line each, never a crash: a 5,000-digit integer,
100,000 levels of nesting (40,000 in objects), in a file (``cattc import``, JSON Lines and
CSV) and in a body streamed to the admin route in small chunks. A streamed body over the
limit, one that stalls and one cut short store nothing.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from click.testing import CliRunner

from bench.import_listings import generate, load_templates
from node.cli.main import cli
from tests.federation.network import NodeFactory
from tests.node.sample import sample_records
from tests.nodes import RunningNode, make_node_dir

HUGE_INT = "7" * 5000
DEEP = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 40_000 + "1" + "}" * 40_000  # within the line limit


def _with_huge_int(record: dict[str, Any]) -> str:
    return json.dumps(dict(record, version=1)).replace('"version": 1', f'"version": {HUGE_INT}')


def test_cli_names_hostile_lines_and_imports_the_rest(tmp_path: Path, database_url: Any) -> None:
    data_dir, _, _ = make_node_dir(tmp_path, "vn", database_url("vn"))
    good = sample_records("vn")[:3]
    lines = [json.dumps(good[0]), _with_huge_int(good[1]), DEEP, DEEP_OBJECT, json.dumps(good[2])]
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = CliRunner().invoke(cli, ["import", str(data_dir), str(path), "--json"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    report = json.loads(result.stdout)
    assert report["created"] == 2
    reasons = {p["line"]: p["reason"] for p in report["problems"]}
    assert set(reasons) == {2, 3, 4}
    assert "5000 characters" in reasons[2]
    assert "nested deeper" in reasons[3] and "nested deeper" in reasons[4]


def test_cli_names_hostile_csv_cells(tmp_path: Path, database_url: Any) -> None:
    data_dir, _, _ = make_node_dir(tmp_path, "vn", database_url("vn"))
    path = tmp_path / "hostile.csv"
    path.write_text(
        "id,category,trl,keywords\n"
        f"vn-off-0001,tech_offer,{HUGE_INT},solar\n"
        f'vn-off-0002,tech_offer,5,"{DEEP}"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["import", str(data_dir), str(path), "--json"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    reasons = {p["line"]: p["reason"] for p in json.loads(result.stdout)["problems"]}
    assert "is not an integer" in reasons[2]
    assert "nested deeper" in reasons[3]


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _post_streamed(
    http: aiohttp.ClientSession, node: RunningNode, body: bytes, query: str = ""
) -> tuple[int, Any]:
    """The body sent chunked (no Content-Length), 4 KiB at a time."""
    async with http.post(
        node.url + "/admin/v1/listings/import" + query,
        data=_chunks(body, 4096),
        headers=node.admin_headers,
    ) as resp:
        return resp.status, await resp.json()


def _th_lines(n: int) -> list[str]:
    return list(generate(load_templates(), n))


async def test_admin_names_hostile_lines_of_a_streamed_body(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("th")
    lines = _th_lines(1200)
    first = json.loads(lines[0])
    lines[1] = _with_huge_int(json.loads(lines[1]))
    lines[699] = DEEP
    lines[1099] = json.dumps(first)  # the same id again, two batches later
    status, report = await _post_streamed(http, node, "\n".join(lines).encode())
    assert status == 207, report
    assert [p["line"] for p in report["problems"]] == [2, 700, 1100]
    assert report["problems"][2]["reason"] == "duplicate of line 1"
    assert report["created"] == 1197
    assert node.runtime.listings.head() == 1197

    # With strict, one bad line at the very end stores none of the body.
    more = _th_lines(1300)[1200:]
    status, report = await _post_streamed(
        http, node, "\n".join([*more, DEEP_OBJECT]).encode(), "?strict=true"
    )
    assert status == 422, report
    assert report["applied"] is False and [p["line"] for p in report["problems"]] == [101]
    assert node.runtime.listings.head() == 1197


async def test_admin_streamed_body_over_the_limit_stores_nothing(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("th", max_body_bytes=64 * 1024)
    body = "\n".join(_th_lines(200)).encode()
    assert len(body) > 2 * 64 * 1024
    status, answer = await _post_streamed(http, node, body)
    assert status == 413, answer
    assert answer["error"]["code"] == "body_too_large"
    assert node.runtime.listings.counts() == {}
    assert node.runtime.listings.head() == 0


async def _raw_import(
    node: RunningNode, head: bytes, body: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a connection, send ``head`` and ``body`` of an import request, leave it open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", urlsplit(node.url).port)
    writer.write(
        b"POST /admin/v1/listings/import HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {node.token}\r\n".encode()
        + head
        + b"\r\n"
        + body
    )
    await writer.drain()
    return reader, writer


async def test_admin_import_body_that_stalls_is_408_and_stores_nothing(
    node_factory: NodeFactory,
) -> None:
    node = await node_factory("th", body_timeout_seconds=0.5)
    lines = "\n".join(_th_lines(600)).encode() + b"\n"
    head = f"Content-Length: {len(lines) + 100}\r\n".encode()
    reader, writer = await _raw_import(node, head, lines)
    try:
        status_line = await asyncio.wait_for(reader.readline(), timeout=20)
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 408"), status_line
    assert node.runtime.listings.head() == 0


async def test_admin_import_body_cut_short_stores_nothing(
    node_factory: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="node.web.admin_listings")
    node = await node_factory("th")
    lines = "\n".join(_th_lines(600)).encode() + b"\n"
    chunk = f"{len(lines):x}\r\n".encode() + lines + b"\r\n"
    _, writer = await _raw_import(node, b"Transfer-Encoding: chunked\r\n", chunk)
    writer.close()
    deadline = time.monotonic() + 20
    while "cut short" not in caplog.text:
        assert time.monotonic() < deadline, "the import did not end"
        await asyncio.sleep(0.02)
    assert "unhandled error" not in caplog.text
    assert node.runtime.listings.head() == 0


async def test_an_import_body_still_arriving_keeps_no_write_out(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    """The import's transaction (the database's write lock) began with its body, so a
    client that sent a byte now and then kept every other write out: a listing saved
    meanwhile answered 500 after 30 s, a peer's signed feed request 500 (its nonce is
    written). The body is now spooled first; the transaction begins once it is in."""
    node = await node_factory("th")
    lines = "\n".join(_th_lines(20)).encode() + b"\n"
    head = f"Content-Length: {len(lines) + 100}\r\n".encode()
    reader, writer = await _raw_import(node, head, lines)  # 100 bytes still to come
    try:
        record = json.loads(_th_lines(21)[20])
        started = time.monotonic()
        async with asyncio.timeout(10):
            status, body = await node.admin(http, "POST", "/admin/v1/listings", json=record)
        assert status == 201, body
        assert time.monotonic() - started < 5
        assert node.runtime.listings.head() == 1  # the import has stored nothing yet
        writer.write(b" " * 99 + b"\n")  # the rest of the body: the import goes through
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=20)
        assert status_line.startswith(b"HTTP/1.1 200"), status_line
    finally:
        writer.close()
    assert node.runtime.listings.head() == 21


async def test_imports_and_saves_at_once_all_finish(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    """An import took a thread of the database pool again for each batch of its
    transaction, which holds the listings' lock: writers waiting for that lock on every
    thread kept it from getting one. On PostgreSQL (no lock timeout) five imports at once
    hung the node for good; an import of two batches and four saves did too."""
    node = await node_factory("th")
    lines = _th_lines(1300)
    bodies = ["\n".join(lines[i * 260 : (i + 1) * 260]).encode() for i in range(5)]
    big = "\n".join(lines[:700]).encode()  # two batches, the same ids as the first two
    singles = [dict(json.loads(line), id=f"th-off-9{n:03d}") for n, line in enumerate(lines[:4])]

    async def importing(body: bytes) -> int:
        async with http.post(
            node.url + "/admin/v1/listings/import",
            data=io.BytesIO(body),
            headers=node.admin_headers,
        ) as resp:
            return resp.status

    async def saving(record: dict[str, Any]) -> int:
        status, _ = await node.admin(http, "POST", "/admin/v1/listings", json=record)
        return status

    async with asyncio.timeout(60):
        statuses = await asyncio.gather(
            *(importing(b) for b in bodies), importing(big), *(saving(r) for r in singles)
        )
    assert statuses == [200] * 6 + [201] * 4, statuses
    assert node.runtime.listings.head() >= 1300 + 4
