"""``cattc serve`` refuses to start, in one ``error:`` line, where it cannot serve: on a
port that another process holds (before it says "serving"), and beside another server
on the same SQLite data directory (both would write to one database file)."""

from __future__ import annotations

import functools
import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_processes import Proc, free_port, poll, serve, serving, stop
from tests.security.procs import make_node, run_serve

pytestmark = pytest.mark.slow


def assert_one_error_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert "serving" not in result.stdout, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_a_port_in_use_is_one_error_line(tmp_path: Path) -> None:
    node = make_node(tmp_path, "vn")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(node.data_dir, "--port", str(port))
    assert_one_error_line(result, f"127.0.0.1:{port}", "in use", "--port")


def test_a_second_server_on_one_sqlite_directory_is_refused(tmp_path: Path) -> None:
    node = make_node(tmp_path, "vn")
    serve([node])
    try:
        result = run_serve(node.data_dir, "--port", str(free_port()))
        assert_one_error_line(result, "already running", str(node.data_dir))
        assert node.get("/healthz")["status"] == "ok"  # the first one serves on
    finally:
        assert stop(node) in (0, -2, 130)
    # Once the first has stopped, the directory is free again.
    again = Proc(node.node_id, node.data_dir, node.url, node.token, node.log)
    serve([again])
    poll(functools.partial(serving, again), 10, "a new server on the freed directory")
    stop(again)
