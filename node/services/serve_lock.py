"""``DATA_DIR/serve.lock``: held by ``cattc serve`` for its life, and by ``cattc restore``
while it replaces the node, so that neither runs under the other (a server kept writing
to the database a restore had replaced, and what it took then was lost at its restart)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "serve.lock"


class LockHeld(Exception):
    """Another process holds the data directory's lock; ``holder`` is its pid as written."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def take(data_dir: Path, *, write_pid: bool = True) -> int:
    """Hold ``data_dir``'s lock (the descriptor returned must stay open); LockHeld if
    another process holds it."""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise LockHeld(holder) from None
    if write_pid:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    return fd
