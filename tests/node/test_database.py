"""``Database.run``: one function of a session, one transaction, off the event loop."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.storage.models import MetaRow
from tests.federation.network import NodeFactory


def put_two(session: Session, prefix: str, *, fail: bool = False) -> int:
    session.add(MetaRow(key=f"{prefix}-a", value="1"))
    session.flush()
    session.add(MetaRow(key=f"{prefix}-b", value="2"))
    if fail:
        raise LookupError("the second half failed")
    return threading.get_ident()


def keys(session: Session, prefix: str) -> list[str]:
    rows = session.scalars(select(MetaRow.key).where(MetaRow.key.like(f"{prefix}-%")))
    return sorted(rows)


async def test_run_commits_together_off_the_loop_and_rolls_back_together(
    node_factory: NodeFactory,
) -> None:
    rt = (await node_factory("vn")).runtime
    thread = await rt.db.run(put_two, "ok")
    assert thread != threading.get_ident()  # a database thread, not the loop's
    assert await rt.db.run(keys, "ok") == ["ok-a", "ok-b"]
    with pytest.raises(LookupError, match="second half"):
        await rt.db.run(put_two, "bad", fail=True)
    assert await rt.db.run(keys, "bad") == []  # the flushed first row went with it
    # The same in the calling thread, for code already off the loop.
    assert rt.db.run_sync(put_two, "sync") == threading.get_ident()
    with pytest.raises(LookupError):
        rt.db.run_sync(put_two, "sync-bad", fail=True)
    assert rt.db.run_sync(keys, "sync") == ["sync-a", "sync-b"]
    assert rt.db.run_sync(keys, "sync-bad") == []
    assert rt.db is rt.db  # one boundary per runtime
