"""One error vocabulary (issue: the protocol owns every wire type): every code that node/,
sync/ or protocol/ sends or records is an ``ErrorCode``, each code has one HTTP status,
and the statuses written beside codes in the handlers agree with that one table."""

from __future__ import annotations

import ast
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from node.services.cursors import CursorExpired
from node.services.directory import DirectoryRejected
from node.services.errors import KeyConflict, NotFound
from node.web.middleware import ApiError, error_middleware
from protocol.errors import STATUS, ErrorCode, ProtocolError, http_status
from protocol.request_sig import RequestSignatureError
from protocol.signing import SignatureError
from sync.verify import PageError
from tests.paths import PROJECT_ROOT as ROOT

PACKAGES = ("node", "sync", "protocol")
# Calls whose first argument is an error code, and those whose second is.
CODE_FIRST = {
    "ProtocolError",
    "SignatureError",
    "RequestSignatureError",
    "PageError",
    "UnknownKey",
}
CODE_SECOND = {"ApiError", "error_response", "RejectedItem"}


def sources() -> Iterator[tuple[Path, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _value(node: ast.expr, constants: dict[str, str]) -> str | None:
    """A literal code, a module constant's, or ``ErrorCode.X``'s (its name when ``X`` is
    none); None for anything computed."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Attribute) and _name(node.value) == "ErrorCode":
        member = ErrorCode.__members__.get(node.attr)
        return member.value if member is not None else node.attr
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _constants(tree: ast.Module) -> dict[str, str]:
    """The module's string constants (``SERVER_BUSY = "server_busy"``)."""
    return {
        t.id: n.value.value
        for n in tree.body
        if isinstance(n, ast.Assign)
        and isinstance(n.value, ast.Constant)
        and isinstance(n.value.value, str)
        for t in n.targets
        if isinstance(t, ast.Name)
    }


def used_codes() -> dict[str, list[str]]:
    """Each code written in the code base, with where."""
    found: dict[str, list[str]] = {}
    for path, tree in sources():
        where = str(path.relative_to(ROOT))
        constants = _constants(tree)
        for node in ast.walk(tree):
            args: list[ast.expr] = []
            if isinstance(node, ast.Call):
                name = _name(node.func)
                if name in CODE_FIRST and node.args:
                    args = [node.args[0]]
                elif name in CODE_SECOND and len(node.args) > 1:
                    args = [node.args[1]]
            elif isinstance(node, ast.ClassDef):
                args = [
                    s.value
                    for s in node.body
                    if isinstance(s, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "code" for t in s.targets)
                ]
            for arg in args:
                code = _value(arg, constants)
                if code is not None:
                    found.setdefault(code, []).append(f"{where}:{arg.lineno}")
    return found


def test_every_code_in_use_is_an_error_code() -> None:
    found = used_codes()
    assert len(found) > 15, found  # the scan sees the code base, not nothing
    known = {c.value for c in ErrorCode}
    missing = {code: where for code, where in found.items() if code not in known}
    assert missing == {}


def test_every_error_code_has_one_status() -> None:
    assert set(STATUS) == set(ErrorCode)
    assert all(400 <= status <= 599 for status in STATUS.values())
    assert http_status("something_a_peer_made_up") == 400


def test_statuses_written_beside_codes_agree_with_the_table() -> None:
    checked, disagree = 0, []
    for path, tree in sources():
        constants = _constants(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _name(node.func) in CODE_SECOND):
                continue
            if len(node.args) < 2 or not isinstance(node.args[0], ast.Constant):
                continue
            status, arg = node.args[0].value, node.args[1]
            if isinstance(arg, ast.Attribute) and _name(arg.value) == "ErrorCode":
                code: str | None = ErrorCode[arg.attr].value
            else:
                code = _value(arg, constants)
            if code is None:
                continue
            checked += 1
            if http_status(code) != status:
                disagree.append(f"{path.relative_to(ROOT)}:{node.lineno} {code} {status!r}")
    assert checked > 10
    assert disagree == []


def test_every_coded_error_is_a_protocol_error() -> None:
    for cls in (
        SignatureError,
        RequestSignatureError,
        PageError,
        ApiError,
        NotFound,
        KeyConflict,
        CursorExpired,
        DirectoryRejected,
    ):
        assert issubclass(cls, ProtocolError), cls
    assert CursorExpired("old").status == 410
    assert KeyConflict("x").code == "key_conflict" and KeyConflict("x").status == 409


async def test_the_middleware_answers_through_the_table() -> None:
    raised: list[ProtocolError] = [
        CursorExpired("resynchronise"),
        DirectoryRejected("older"),
        RequestSignatureError("wrong_destination", "not us"),
        SignatureError("signature_invalid", "bad"),
        ApiError(404, ErrorCode.NOT_FOUND, "nothing here"),
    ]

    async def handler(request: web.Request) -> web.Response:
        raise raised[int(request.match_info["n"])]

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/{n}", handler)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for n, exc in enumerate(raised):
            resp = await client.get(f"/{n}")
            body = json.loads(await resp.text())
            assert (resp.status, body) == (
                STATUS[ErrorCode(exc.code)],
                {"error": {"code": exc.code, "message": exc.message}},
            )


def _class_statuses(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """Classes that set a ``status`` of their own beside their ``code``."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        assigned = {
            t.id
            for s in node.body
            if isinstance(s, ast.Assign | ast.AnnAssign) and s.value is not None
            for t in (s.targets if isinstance(s, ast.Assign) else [s.target])
            if isinstance(t, ast.Name)
        }
        if {"code", "status"} <= assigned:
            yield node.name, node.lineno


def test_no_error_class_keeps_a_status_of_its_own() -> None:
    """A ``status`` class attribute would hide ``ProtocolError.status`` (the table's) and
    could say something else; the code alone decides."""
    own = [
        f"{path.relative_to(ROOT)}:{line} {name}"
        for path, tree in sources()
        for name, line in _class_statuses(tree)
    ]
    assert own == []


def _sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    err = sqlite3.OperationalError(message)
    err.sqlite_errorcode = code  # as the sqlite3 module sets it
    return err


async def test_a_database_away_or_busy_is_503_and_a_wrong_query_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL restarting or its sessions ended answered every request 500 with a
    traceback each, federation routes too (members took the hub for broken): now 503
    ``server_busy`` with Retry-After, and a warning line now and then. A query that is
    wrong (SQLite writes "no such table" as an OperationalError) is still a 500."""
    raised: list[Exception] = [
        OperationalError("SELECT 1", {}, psycopg.OperationalError("terminating connection")),
        InterfaceError("SELECT 1", {}, psycopg.InterfaceError("the connection is closed")),
        PoolTimeout("QueuePool limit of size 5 overflow 10 reached"),
        OperationalError("INSERT", {}, _sqlite_error("database is locked", 5)),
        OperationalError("SELECT", {}, _sqlite_error("no such table: listings", 1)),
    ]

    async def handler(request: web.Request) -> web.Response:
        raise raised[int(request.match_info["n"])]

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/api/{n}", handler)
    caplog.set_level(logging.WARNING, logger="node.web.middleware")
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        answers = []
        for n in range(len(raised)):
            resp = await client.get(f"/api/{n}")
            body = json.loads(await resp.text())
            answers.append((resp.status, body["error"]["code"], resp.headers.get("Retry-After")))
    busy = (503, "server_busy", "5")
    assert answers == [busy, busy, busy, busy, (500, "internal_error", None)]
    away = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(away) == 1 and not away[0].exc_info  # one line for the four, no traceback
    assert [r.exc_info is not None for r in caplog.records if r not in away] == [True]
