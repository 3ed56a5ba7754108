"""Starting one ``cattc serve`` process on a fresh data directory, for the tests that
try a server from outside (busy ports, a second server, strangers' connections)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from node.config import NodeConfig
from node.services.setup import init_node
from tests.e2e.test_processes import Proc, free_port
from tests.nodes import COUNTRY
from tests.paths import PROJECT_ROOT


def make_node(root: Path, node_id: str, *, is_hub: bool = False) -> Proc:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    result = init_node(
        root / node_id,
        NodeConfig(
            node_id=node_id,
            country=COUNTRY[node_id],
            host="127.0.0.1",
            port=port,
            base_url=url,
            is_hub=is_hub,
            sync_interval_seconds=60,
            sync_jitter_seconds=0,
        ),
    )
    return Proc(node_id, root / node_id, url, result.admin_token, root / f"{node_id}.log")


def serve_cmd(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "node.cli.main", "serve", str(data_dir), *args]


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATTC_")}
    env.update(CATTC_LOG_LEVEL="WARNING", **overrides)
    return env


def run_serve(
    data_dir: Path, *args: str, timeout_s: float = 20
) -> subprocess.CompletedProcess[str]:
    """``cattc serve`` that is expected to stop by itself (it refuses to start)."""
    return subprocess.run(
        serve_cmd(data_dir, *args),
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=PROJECT_ROOT,
        timeout=timeout_s,
        check=False,
    )
