"""Everything one running node holds: config, keys, database engine and services.

Built once per process (or per node in tests, several per process) by ``open_runtime``;
the web app and the CLI both work through it. Blocking database work runs on the
runtime's own thread pool so the event loop stays free: ``rt.db.run(fn)`` runs
``fn(session)`` there in one transaction (``node.storage.database``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine

from node.clock import Clock, system_clock
from node.config import KEY_FILE, NodeConfig, load_config, save_hub_key
from node.services.directory import DirectoryService, Member, keys_from_identity
from node.services.feed import FeedService
from node.services.identity import identity_document
from node.services.listings import ListingService
from node.services.policy import PolicyService
from node.storage.database import Database
from node.storage.db import DatabaseUnavailable, make_engine, migrate
from protocol.b64 import b64url_encode
from protocol.keys import KeyStore

T = TypeVar("T")


@dataclass
class NodeRuntime:
    data_dir: Path
    config: NodeConfig
    keys: KeyStore
    engine: Engine
    clock: Clock
    listings: ListingService
    policy: PolicyService
    directory: DirectoryService
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="db")
    )

    _feed: FeedService | None = None
    _db: Database | None = None

    @property
    def node_id(self) -> str:
        return self.config.node_id

    @property
    def feed(self) -> FeedService:
        if self._feed is None:
            self._feed = FeedService(self)
        return self._feed

    @property
    def db(self) -> Database:
        """The storage boundary: ``await rt.db.run(fn, ...)`` runs ``fn(session, ...)`` in
        one transaction on this runtime's database threads."""
        if self._db is None:
            self._db = Database(self.engine, self.executor)
        return self._db

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking work off the event loop, on the database threads (work of one
        transaction: ``db.run``)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def identity(self) -> dict[str, Any]:
        return identity_document(
            node_id=self.config.node_id,
            name=self.config.name,
            country=self.config.country,
            base_url=self.config.resolved_base_url(),
            keys=self.keys,
            now_ms=self.clock(),
        )

    def hub_entry(self) -> Member:
        keys = keys_from_identity(self.identity())
        return Member(
            node_id=self.node_id,
            country=self.config.country,
            name=self.config.name,
            base_url=self.config.resolved_base_url(),
            keys=keys,
            groups=["hub"],
        )

    def directory_document(self) -> dict[str, Any]:
        return self.directory.signed_document(self.keys, self.hub_entry())

    def repin_hub_key(self, key: bytes) -> None:
        """Pin ``key`` as the hub's, here and in node.toml (after a key hand-over)."""
        text = b64url_encode(key)
        save_hub_key(self.data_dir, text)
        self.config = self.config.model_copy(update={"hub_key": text})

    def reload_keys(self) -> None:
        self.keys = KeyStore.load(self.data_dir / KEY_FILE)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.engine.dispose()


def _require_sqlite_file(engine: Engine, data_dir: Path) -> None:
    """A node's SQLite file must be there: connecting would make a new, empty one, and the
    node would go on without its listings, users and sync state, saying nothing."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if path and path != ":memory:" and not Path(path).exists():
        engine.dispose()
        raise DatabaseUnavailable(
            f"the node's database {path} is missing; nothing was changed. A node on "
            "PostgreSQL needs CATTC_DATABASE_URL set for every command; on SQLite, put the "
            f"file back or restore the node from its backup (cattc restore BACKUP "
            f"--data-dir {data_dir} --force, with cattc serve stopped)"
        )


def open_runtime(
    data_dir: Path,
    *,
    config: NodeConfig | None = None,
    clock: Clock = system_clock,
) -> NodeRuntime:
    """Load a node from its data directory, migrating its database to the newest schema."""
    config = config or load_config(data_dir)
    keys = KeyStore.load(data_dir / KEY_FILE)
    engine = make_engine(config.resolved_database_url(data_dir))
    _require_sqlite_file(engine, data_dir)
    migrate(engine)
    listings = ListingService(engine, config.node_id, config.country, clock)
    policy = PolicyService(engine, clock, hub_id=config.hub_id)
    return NodeRuntime(
        data_dir=data_dir,
        config=config,
        keys=keys,
        engine=engine,
        clock=clock,
        listings=listings,
        policy=policy,
        directory=DirectoryService(engine, clock, config.node_id),
    )
