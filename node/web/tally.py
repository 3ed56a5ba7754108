"""Amounts held per key (connections of an address, body bytes of an address, requests
of a member): a key is forgotten when its amount falls to nothing, so the table grows
with the keys in use now, not with every key ever seen (any stranger brings new ones)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Tally(Generic[K]):
    def __init__(self) -> None:
        self._held: dict[K, int] = {}

    def __getitem__(self, key: K) -> int:
        return self._held.get(key, 0)

    def __len__(self) -> int:
        return len(self._held)

    def add(self, key: K, amount: int = 1) -> None:
        if amount:
            self._held[key] = self._held.get(key, 0) + amount

    def take(self, key: K, amount: int = 1) -> None:
        """Give back ``amount`` that ``add`` counted for ``key``."""
        if not amount:
            return
        left = self._held[key] - amount
        if left:
            self._held[key] = left
        else:
            del self._held[key]
