"""What the sync reader needs from storage, as small protocols the node implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol.keys import VerifyKeyInfo


@dataclass(frozen=True)
class VerifiedItem:
    """An item whose schema, issuer, audience and signature have been checked."""

    obj: dict[str, Any]
    canonical: bytes
    key_name: str


@dataclass(frozen=True)
class RejectedItem:
    obj: Any
    code: str
    message: str


@dataclass
class ApplyResult:
    """What applying one page did. ``added``, ``updated`` and ``removed`` name the
    listing ids of ``origin`` whose held copy appeared, was replaced or was purged, in
    page order: what observers work from, instead of rescanning what is held."""

    applied: int = 0
    retracted: int = 0
    duplicates: int = 0
    rejected: list[RejectedItem] = field(default_factory=list)
    origin: str = ""
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass
class Changes:
    """What one or more pages of ``origin`` changed, merged: listing id -> "added",
    "updated" or "removed" (the last change of each wins, except that an update of a
    listing added earlier stays "added")."""

    origin: str
    listings: dict[str, str] = field(default_factory=dict)

    def merge(self, result: ApplyResult) -> None:
        for kind, ids in (
            ("added", result.added),
            ("updated", result.updated),
            ("removed", result.removed),
        ):
            for lid in ids:
                if kind == "updated" and self.listings.get(lid) == "added":
                    continue
                self.listings[lid] = kind

    def ids(self, kind: str) -> list[str]:
        return [lid for lid, k in self.listings.items() if k == kind]

    def __bool__(self) -> bool:
        return bool(self.listings)


@dataclass(frozen=True)
class PeerCursor:
    cursor: str | None
    failures: int = 0
    last_attempt: int | None = None


@dataclass
class RunRecord:
    peer: str
    started: int
    finished: int | None = None
    applied: int = 0
    retracted: int = 0
    rejected: int = 0
    error: str | None = None
    head: int | None = None
    position: int | None = None
    cursor: str | None = None
    # When the run's last page was applied (``time.monotonic()``), and whether the run
    # ended by its time or page budget with pages still coming and more to pull: not a
    # failure, and pulled on at once.
    last_page_s: float | None = None
    more: bool = False


class CursorMoved(Exception):
    """A page's apply found the peer's cursor elsewhere than where the page began: another
    process pulled the peer meanwhile (its pull lock was lost). Nothing was applied."""


class SyncStore(Protocol):
    """Storage of remote copies and of where each peer's feed stands."""

    def peer_cursor(self, peer: str) -> PeerCursor: ...

    def apply_page(
        self,
        peer: str,
        items: Sequence[VerifiedItem],
        rejected: Sequence[RejectedItem],
        *,
        after: str | None,
        next_cursor: str,
        head: int,
        position: int | None,
        now: int,
    ) -> ApplyResult:
        """Apply items, quarantine rejects and move the cursor from ``after`` to
        ``next_cursor``, in one transaction; ``CursorMoved`` if it is not at ``after``."""
        ...

    def reset_cursor(self, peer: str) -> None: ...

    def record_run(self, run: RunRecord, *, success: bool) -> None: ...


class SyncObserver(Protocol):
    """Something that follows what sync changes (the hub's search and matching): told
    once per pull of a peer that changed anything, with what it changed, after the pull
    and outside its lock (a notify meanwhile is pulled at once). Register with
    ``SyncManager.add_observer``. What must commit with the page (search rows, the
    custody receipt) is written in the page's transaction instead (``RemoteStore``'s
    page hooks); an observer is for work that may lag, and may be lost with a crash:
    it must be able to catch up from what is stored at its start."""

    async def synced(self, changes: Changes) -> None: ...


class KeySource(Protocol):
    """Verify keys of a peer; ``refresh`` refetches its identity (rate limited)."""

    def keys(self, peer: str) -> Mapping[str, VerifyKeyInfo]: ...

    async def refresh(self, peer: str) -> bool: ...
