"""The hub matcher's queue of changes (``match_queue``): what each applied page added,
replaced or purged, as (owner, listing id) rows written in the page's own transaction by
``queue_changes`` (a page hook of ``HubRemoteStore``), so a change is queued exactly when
it is stored, whichever process pulled it, and a crash cannot separate the two.

The matching worker reads the queue (``read``), brings its matcher up to date for those
listings only, and deletes the rows it read by id (``drop``): the rows left are what it
has not taken in. A pass therefore costs what changed, not what is held. Rows are deleted
by id, never by range: on PostgreSQL a transaction may commit a smaller id after a larger
one was read, and that row must stay for the next pass. At the worker's start the matcher
is loaded from everything held; the rows present before that load began are then covered
and dropped (``ids``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from sqlalchemy import Engine, Table, delete, func, insert, select
from sqlalchemy.orm import Session

from node.services.remote_store import AppliedPage
from node.storage.models import MatchQueueRow

QUEUE = cast(Table, MatchQueueRow.__table__)
READ_BATCH = 5000  # queue rows read per query
DROP_BATCH = 500  # ids per DELETE ... IN (...)
Ref = tuple[str, str]


def queue_changes(session: Session, page: AppliedPage) -> None:
    """A page hook: one row per listing the page added, replaced or purged."""
    result = page.result
    ids = dict.fromkeys([*result.added, *result.updated, *result.removed])
    if ids:
        session.execute(insert(QUEUE), [{"owner": page.origin, "listing_id": lid} for lid in ids])


def read(engine: Engine, after: int = 0) -> list[tuple[int, Ref]]:
    """Up to ``READ_BATCH`` queued changes with an id above ``after``, by id."""
    with Session(engine) as session:
        rows = session.execute(
            select(QUEUE.c.id, QUEUE.c.owner, QUEUE.c.listing_id)
            .where(QUEUE.c.id > after)
            .order_by(QUEUE.c.id)
            .limit(READ_BATCH)
        ).all()
    return [(int(i), (str(o), str(lid))) for i, o, lid in rows]


def batches(engine: Engine) -> Iterator[list[tuple[int, Ref]]]:
    """Every queued change visible now, a batch at a time (the caller drops each batch
    once it has taken it in)."""
    after = 0
    while True:
        rows = read(engine, after)
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def ids(engine: Engine) -> list[int]:
    """The ids of every queued change visible now."""
    with Session(engine) as session:
        return [int(i) for i in session.scalars(select(QUEUE.c.id))]


def drop(engine: Engine, taken: list[int]) -> None:
    """Delete the queue rows ``taken`` (by id, in short transactions)."""
    for start in range(0, len(taken), DROP_BATCH):
        chunk = taken[start : start + DROP_BATCH]
        with Session(engine) as session, session.begin():
            session.execute(delete(QUEUE).where(QUEUE.c.id.in_(chunk)))


def waiting(session: Session) -> bool:
    """Whether any change waits (one indexed row read)."""
    return session.scalar(select(QUEUE.c.id).limit(1)) is not None


def size(engine: Engine) -> int:
    """How many changes wait (for status and tests)."""
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(QUEUE)) or 0)
