"""Creating a node's data directory: configuration, signing key, admin token, policy."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from node.clock import Clock, system_clock
from node.config import (
    CONFIG_FILE,
    KEY_FILE,
    POLICY_FILE,
    TOKEN_FILE,
    NodeConfig,
    save_config,
)
from node.services.policy import PolicyService
from node.storage.db import make_engine, migrate
from protocol.keys import KeyStore


class SetupError(Exception):
    pass


@dataclass(frozen=True)
class InitResult:
    config: NodeConfig
    admin_token: str
    keys: KeyStore
    policy_version: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, expected_sha256: str) -> bool:
    return bool(expected_sha256) and hmac.compare_digest(hash_token(token), expected_sha256)


def write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def init_node(
    data_dir: Path,
    config: NodeConfig,
    *,
    clock: Clock = system_clock,
    seed: bytes | None = None,
    admin_token: str | None = None,
) -> InitResult:
    """Create a new node in ``data_dir``; refuse if one is there already."""
    if (data_dir / CONFIG_FILE).exists() or (data_dir / KEY_FILE).exists():
        raise SetupError(f"{data_dir} already holds a node; refusing to overwrite it")
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    token = admin_token or secrets.token_urlsafe(32)
    config = config.model_copy(update={"admin_token_sha256": hash_token(token)})
    keys = KeyStore.generate(clock(), seed=seed)
    keys.save(data_dir / KEY_FILE)
    write_secret(data_dir / TOKEN_FILE, token + "\n")
    save_config(data_dir, config)
    engine = make_engine(config.resolved_database_url(data_dir))
    try:
        migrate(engine)
        policy = PolicyService(engine, clock, hub_id=config.hub_id).install_default()
    finally:
        engine.dispose()
    (data_dir / POLICY_FILE).write_text(policy.text, encoding="utf-8")
    return InitResult(config=config, admin_token=token, keys=keys, policy_version=policy.version)
