"""The marketplace's own facets (IPC class and readiness), cached per query.

They are counted over every hit, which over 200,000 listings takes longer than a page
should. They are kept per query and counted again when a search row changed, but at
most once a minute per query: while members sync every few seconds, the counts beside
these two filters may lag the results by up to a minute (the results never do), and by
up to ten minutes for listings that expired meanwhile.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from node.hub.search import SearchQuery, more_facets, rows_generation

if TYPE_CHECKING:
    from node.runtime import NodeRuntime

MIN_AGE_MS = 60_000
MAX_AGE_MS = 600_000
SIZE = 256


@dataclass(frozen=True)
class _Entry:
    generation: Any
    at: int
    facets: dict[str, dict[str, int]]


class FacetCache:
    def __init__(self, size: int = SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def facets(self, rt: NodeRuntime, q: SearchQuery) -> dict[str, dict[str, int]]:
        """IPC and TRL counts of ``q``'s hits (blocking: run via ``rt.run``)."""
        key = (q.q, q.category, q.country, q.ipc, q.trl_min, q.sector)
        now = rt.clock()
        generation = rows_generation(rt)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                age = now - entry.at
                fresh = entry.generation == generation or age < MIN_AGE_MS
                if fresh and 0 <= age < MAX_AGE_MS:
                    self._entries.move_to_end(key)
                    return entry.facets
        counted = more_facets(rt, q)
        with self._lock:
            self._entries[key] = _Entry(generation, now, counted)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return counted
