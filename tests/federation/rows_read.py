"""How many rows a piece of code reads from the database: a cost that does not depend on
the machine's speed or load, for tests of work done again and again (a poll, a pass
every few seconds) that must not grow with a table.

``rows_read(engine)`` records each SELECT the engine sends while it is open; ``rows``
then runs each again (same text, same parameters) and counts the rows it returns, which
is what the code was handed, whether or not it looked at them all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event


@dataclass
class Reads:
    engine: Engine
    statements: list[tuple[str, Any]] = field(default_factory=list)

    def per_statement(self) -> list[tuple[int, str]]:
        """(rows returned, statement) of each SELECT recorded, in order."""
        out = []
        with self.engine.connect() as conn:
            for statement, parameters in self.statements:
                rows = conn.exec_driver_sql(statement, parameters).fetchall()
                out.append((len(rows), statement))
            conn.rollback()
        return out

    @property
    def rows(self) -> int:
        return sum(n for n, _ in self.per_statement())


@contextlib.contextmanager
def rows_read(engine: Engine) -> Iterator[Reads]:
    reads = Reads(engine)

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if not executemany and statement.lstrip().upper().startswith("SELECT"):
            reads.statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield reads
    finally:
        event.remove(engine, "before_cursor_execute", record)
