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
    applied: int = 0
    retracted: int = 0
    duplicates: int = 0
    rejected: list[RejectedItem] = field(default_factory=list)


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


class SyncStore(Protocol):
    """Storage of remote copies and of where each peer's feed stands."""

    def peer_cursor(self, peer: str) -> PeerCursor: ...

    def apply_page(
        self,
        peer: str,
        items: Sequence[VerifiedItem],
        rejected: Sequence[RejectedItem],
        *,
        next_cursor: str,
        head: int,
        position: int | None,
        now: int,
    ) -> ApplyResult:
        """Apply items, quarantine rejects and move the cursor, in one transaction."""
        ...

    def reset_cursor(self, peer: str) -> None: ...

    def record_run(self, run: RunRecord, *, success: bool) -> None: ...


class KeySource(Protocol):
    """Verify keys of a peer; ``refresh`` refetches its identity (rate limited)."""

    def keys(self, peer: str) -> Mapping[str, VerifyKeyInfo]: ...

    async def refresh(self, peer: str) -> bool: ...
