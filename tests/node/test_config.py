"""node.toml and CATTC_* values are checked when the node is opened: a value no part of
the node can use is one clear error there, not an unexpected failure later (serve's
scheduler, its logging, every pull of a peer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w

from node.config import CONFIG_FILE, ConfigError, load_config
from protocol.b64 import b64url_encode

KEY = b64url_encode(bytes(range(32)))
PEER = {"node_id": "la", "base_url": "https://la.example", "key": f"ed25519:1={KEY}"}


def node_dir(tmp_path: Path, **values: Any) -> Path:
    config = {"node_id": "th", "country": "TH", **values}
    (tmp_path / CONFIG_FILE).write_text(tomli_w.dumps(config), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("values", "env", "message"),
    [
        ({}, {"CATTC_SYNC_INTERVAL_SECONDS": "inf"}, "sync_interval_seconds: Input should be"),
        ({}, {"CATTC_SYNC_INTERVAL_SECONDS": "1e300"}, "sync_interval_seconds: Input should be"),
        ({}, {"CATTC_SYNC_INTERVAL_SECONDS": "nan"}, "sync_interval_seconds: Input should be"),
        ({}, {"CATTC_LOG_LEVEL": "verbose"}, "log_level: Value error, log_level must be one of"),
        ({"peers": [{**PEER, "key": "ed25519:1=not-a-key"}]}, {}, "peers.0.key: Value error"),
        ({"peers": [{**PEER, "key": "rsa:1=" + KEY}]}, {}, "invalid key name 'rsa:1'"),
        ({"peers": [{**PEER, "key": KEY[:20]}]}, {}, "32-byte Ed25519 public key"),
        ({"peers": [{**PEER, "node_id": "ZZ"}]}, {}, "peers.0.node_id: String should match"),
        ({"peers": [{**PEER, "base_url": "notaurl"}]}, {}, "peers.0.base_url: String should match"),
        ({}, {"CATTC_TRUSTED_PROXIES": "127.0.0.1, proxy.example"}, "is not an address"),
        ({"port": True}, {}, "port: Value error, must be a number, not true or false"),
        ({"sync_jitter_seconds": False}, {}, "sync_jitter_seconds: Value error, must be a number"),
    ],
)
def test_a_value_the_node_cannot_use_is_a_config_error(
    tmp_path: Path, values: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match="invalid configuration: ") as caught:
        load_config(node_dir(tmp_path, **values), environ=env)
    assert message in str(caught.value), caught.value


def test_good_values_are_read_as_meant(tmp_path: Path) -> None:
    bare = {**PEER, "key": KEY}  # a key without its name is the peer's ed25519:1
    data_dir = node_dir(tmp_path, peers=[PEER, {**bare, "node_id": "kh"}], log_level="warning")
    env = {
        "CATTC_TRUSTED_PROXIES": "127.0.0.1, ::1,10.0.0.0/8",
        "CATTC_SYNC_INTERVAL_SECONDS": "300",
    }
    config = load_config(data_dir, environ=env)
    assert config.trusted_proxies == ["127.0.0.1", "::1", "10.0.0.0/8"]  # was "not a list"
    assert config.sync_interval_seconds == 300 and config.log_level == "warning"
    assert [p.node_id for p in config.peers] == ["la", "kh"]
