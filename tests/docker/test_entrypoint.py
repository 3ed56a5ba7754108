"""docker/entrypoint.sh, run for real with /bin/sh: what it passes to ``cattc init`` (parsed
by the real CLI), that it creates a working node from the compose environment, and that it
inits once, keeps the admin token out of the logs and cleans up after a failed init.

NODE_DATA_DIR points the script at a temporary directory instead of the image's /data.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.config import CONFIG_FILE, KEY_FILE, TOKEN_FILE, load_config
from tests.docker.checks import ENTRYPOINT, HUB, load_compose, parse_cattc

RECORDER = """#!/bin/sh
# Stands in for cattc: records its arguments, one JSON list per call.
"{python}" -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> "{log}"
{extra}
"""
REAL_CATTC = """#!/bin/sh
exec "{python}" -c 'import sys; from node.cli.main import cli; cli(prog_name="cattc")' "$@"
"""


def _bin(tmp_path: Path, script: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    path = bindir / "cattc"
    path.write_text(script, encoding="utf-8")
    path.chmod(0o755)
    return bindir


def _run(
    bindir: Path, data_dir: Path, env: dict[str, str], *command: str
) -> subprocess.CompletedProcess[str]:
    environ = {
        "PATH": f"{bindir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(bindir.parent),
        "NODE_DATA_DIR": str(data_dir),
        **env,
    }
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *command],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _service_env(node: str, *, sqlite: bool = False) -> dict[str, str]:
    env = {k: str(v) for k, v in load_compose()["services"][node]["environment"].items()}
    if sqlite:
        del env["CATTC_DATABASE_URL"]
    return env


def _recorder(tmp_path: Path, extra: str = "") -> tuple[Path, Path]:
    log = tmp_path / "calls.jsonl"
    return _bin(tmp_path, RECORDER.format(python=sys.executable, log=log, extra=extra)), log


def _calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("node", [HUB, "th"])
def test_first_start_runs_a_valid_init_then_the_command(tmp_path: Path, node: str) -> None:
    bindir, log = _recorder(tmp_path)
    data_dir = tmp_path / "data"
    env = _service_env(node)
    serve = ["cattc", "serve", str(data_dir), "--host", "0.0.0.0", "--port", "8080"]
    result = _run(bindir, data_dir, env, *serve)
    assert result.returncode == 0, result.stderr
    init, served = _calls(log)
    assert served == serve[1:]
    params: dict[str, Any] = parse_cattc(["cattc", *init])[-1].params
    assert params == {
        "data_dir": data_dir,
        "node_id": node,
        "country": node.upper(),
        "name": env["CATTC_NAME"],
        "base_url": f"http://{node}:8080",
        "host": "0.0.0.0",
        "port": 8080,
        "database_url": env["CATTC_DATABASE_URL"],
        "hub_url": "" if node == HUB else "http://cn:8080",
        "hub_key": "" if node == HUB else env["CATTC_HUB_KEY"],
        "is_hub": node == HUB,
    }


def test_without_a_command_it_serves_the_data_directory(tmp_path: Path) -> None:
    bindir, log = _recorder(tmp_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / CONFIG_FILE).write_text("", encoding="utf-8")
    result = _run(bindir, data_dir, {})
    assert result.returncode == 0, result.stderr
    assert _calls(log) == [["serve", str(data_dir), "--host", "0.0.0.0", "--port", "8080"]]


def test_an_existing_node_is_not_created_again(tmp_path: Path) -> None:
    bindir, log = _recorder(tmp_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / CONFIG_FILE).write_text("", encoding="utf-8")
    result = _run(bindir, data_dir, _service_env("th"), "cattc", "status", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert _calls(log) == [["status", str(data_dir)]]


def test_missing_node_id_stops_before_creating_anything(tmp_path: Path) -> None:
    bindir, log = _recorder(tmp_path)
    env = _service_env("th")
    del env["CATTC_NODE_ID"]
    result = _run(bindir, tmp_path / "data", env, "true")
    assert result.returncode != 0
    assert "CATTC_NODE_ID" in result.stderr
    assert _calls(log) == []


def test_a_failed_init_leaves_no_half_made_node(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    made = " ".join(shlex.quote(str(data_dir / f)) for f in (CONFIG_FILE, KEY_FILE, TOKEN_FILE))
    bindir, _ = _recorder(tmp_path, extra=f"touch {made}\nexit 1")
    data_dir.mkdir()
    result = _run(bindir, data_dir, _service_env("th"), "true")
    assert result.returncode == 1
    assert "'cattc init' failed" in result.stderr
    assert sorted(p.name for p in data_dir.iterdir()) == []


def test_a_stray_key_without_config_is_left_alone(tmp_path: Path) -> None:
    bindir, log = _recorder(tmp_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / KEY_FILE).write_text("{}", encoding="utf-8")
    result = _run(bindir, data_dir, _service_env("th"), "true")
    assert result.returncode == 1 and "no node.toml" in result.stderr
    assert (data_dir / KEY_FILE).exists() and _calls(log) == []


@pytest.mark.parametrize("node", [HUB, "vn"])
def test_compose_environment_creates_a_working_node(tmp_path: Path, node: str) -> None:
    """The real cattc (SQLite instead of the compose PostgreSQL) from the real script."""
    bindir = _bin(tmp_path, REAL_CATTC.format(python=sys.executable))
    data_dir = tmp_path / "data"
    env = _service_env(node, sqlite=True)
    result = _run(bindir, data_dir, env, "cattc", "status", str(data_dir), "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout[result.stdout.index("{") :])
    assert (status["node_id"], status["country"]) == (node, node.upper())
    config = load_config(data_dir, environ={})
    assert (config.is_hub, config.host, config.port) == (node == HUB, "0.0.0.0", 8080)
    assert config.base_url == f"http://{node}:8080"
    token = (data_dir / TOKEN_FILE).read_text(encoding="utf-8").strip()
    assert stat.S_IMODE((data_dir / TOKEN_FILE).stat().st_mode) == 0o600
    assert token not in result.stdout + result.stderr, "the admin token reached the logs"
