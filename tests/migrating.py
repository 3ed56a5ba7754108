"""Bring a test database to one revision of the migrations, as a node upgraded in place
would have it (``node.storage.db.migrate`` always goes to the newest)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from node.storage.db import MIGRATIONS


def upgrade_to(engine: Engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
