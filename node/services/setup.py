"""Creating a node's data directory: configuration, signing key, admin token, policy.

All or nothing: the database is reached before anything is written, and a failure at any
step removes what this attempt created (the data directory itself if it made it), so
that the operator fixes the cause and runs ``cattc init`` again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

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
from node.storage.db import (
    DatabaseUnavailable,
    check_connection,
    describe_database_error,
    make_engine,
    migrate,
)
from protocol.keys import KeyStore

logger = logging.getLogger(__name__)


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
    """Create a new node in ``data_dir``; refuse if one is there already. Raises
    ``SetupError`` (after removing whatever it created) when it cannot be done."""
    if data_dir.exists() and not data_dir.is_dir():
        raise SetupError(f"{data_dir} is a file, not a directory")
    if (data_dir / CONFIG_FILE).exists() or (data_dir / KEY_FILE).exists():
        raise SetupError(f"{data_dir} already holds a node; refusing to overwrite it")
    made_dir = _first_missing(data_dir)
    before = set(data_dir.iterdir()) if made_dir is None else set()
    new_sqlite = _new_sqlite_file(config.database_url)
    try:
        return _create(data_dir, config, clock=clock, seed=seed, admin_token=admin_token)
    except BaseException as exc:
        _remove_created(data_dir, made_dir, before)
        for path in new_sqlite:
            path.unlink(missing_ok=True)
        if isinstance(exc, DatabaseUnavailable):
            raise SetupError(f"{exc}; nothing was created") from exc
        if isinstance(exc, OSError):
            raise SetupError(f"cannot create the node in {data_dir}: {exc}") from exc
        raise


def _create(
    data_dir: Path,
    config: NodeConfig,
    *,
    clock: Clock,
    seed: bytes | None,
    admin_token: str | None,
) -> InitResult:
    database_url = config.resolved_database_url(data_dir)
    engine = make_engine(database_url)  # a URL of the wrong kind: before any file is written
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(data_dir, 0o700)
        check_connection(engine)
        token = admin_token or secrets.token_urlsafe(32)
        config = config.model_copy(update={"admin_token_sha256": hash_token(token)})
        keys = KeyStore.generate(clock(), seed=seed)
        keys.save(data_dir / KEY_FILE)
        write_secret(data_dir / TOKEN_FILE, token + "\n")
        try:
            migrate(engine)
            policy = PolicyService(engine, clock, hub_id=config.hub_id).install_default()
        except Exception as exc:
            if getattr(exc, "orig", None) is None and not isinstance(exc, OSError):
                raise
            raise DatabaseUnavailable(describe_database_error(exc, database_url)) from exc
    finally:
        engine.dispose()
    (data_dir / POLICY_FILE).write_text(policy.text, encoding="utf-8")
    save_config(data_dir, config)  # last: a node.toml means a whole node
    return InitResult(config=config, admin_token=token, keys=keys, policy_version=policy.version)


def _new_sqlite_file(database_url: str) -> list[Path]:
    """A SQLite database outside the data directory that does not exist yet: its files,
    to remove if init fails after connecting (which creates it)."""
    if not database_url.startswith("sqlite"):
        return []
    try:
        name = make_url(database_url).database
    except ArgumentError:
        return []
    if not name or name == ":memory:" or Path(name).exists():
        return []
    return [Path(name + suffix) for suffix in ("", "-wal", "-shm", "-journal")]


def _first_missing(path: Path) -> Path | None:
    """The outermost directory of ``path`` (itself included) that does not exist yet."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def _remove_created(data_dir: Path, made_dir: Path | None, before: set[Path]) -> None:
    """Undo a failed init: the directories it made, or the files it added to an
    existing directory (the SQLite database among them)."""
    try:
        if made_dir is not None:
            shutil.rmtree(made_dir, ignore_errors=True)
            return
        for path in set(data_dir.iterdir()) - before:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    except OSError as exc:  # the original failure is what the operator must see
        logger.warning("could not remove what the failed init created in %s: %s", data_dir, exc)
