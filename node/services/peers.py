"""Who this node talks to, and with which keys: the directory's members, the pinned hub
key, and the bilateral peers of the config."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from node.config import pinned_key_bytes
from protocol.keys import VerifyKeyInfo

if TYPE_CHECKING:
    from node.runtime import NodeRuntime


@dataclass(frozen=True)
class PeerInfo:
    node_id: str
    base_url: str
    keys: dict[str, VerifyKeyInfo]
    pinned: bytes | None = None
    status: str = "active"


class PinnedKeys(Mapping[str, VerifyKeyInfo]):
    """Known keys of a peer, plus a pinned key accepted under any key name."""

    def __init__(self, peer: PeerInfo) -> None:
        self.peer = peer

    def __getitem__(self, name: str) -> VerifyKeyInfo:
        if name in self.peer.keys:
            return self.peer.keys[name]
        if self.peer.pinned is not None:
            return VerifyKeyInfo(self.peer.pinned)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.peer.keys)

    def __len__(self) -> int:
        return len(self.peer.keys)


def pinned_key(text: str) -> bytes | None:
    if not text:
        return None
    try:
        return pinned_key_bytes(text)
    except ValueError:  # config refuses such a key; none is pinned
        return None


def peer_info(rt: NodeRuntime, node_id: str) -> PeerInfo | None:
    member = rt.directory.get(node_id)
    cfg = rt.config
    if node_id == cfg.hub_id and not cfg.is_hub and cfg.hub_key:
        base = member.base_url if member else cfg.hub_url
        keys = member.verify_keys() if member else {}
        return PeerInfo(node_id, base or cfg.hub_url, keys, pinned_key(cfg.hub_key))
    if member is not None:
        return PeerInfo(node_id, member.base_url, member.verify_keys(), None, member.status)
    for peer in cfg.peers:
        if peer.node_id == node_id:
            return PeerInfo(node_id, peer.base_url, {}, pinned_key(peer.key))
    return None


def pull_targets(rt: NodeRuntime) -> list[PeerInfo]:
    """Every node whose feed this node reads: active members (on a member, unless its
    ``pull_members`` is false), the hub, config peers."""
    ids: set[str] = set()
    if rt.config.is_hub or rt.config.pull_members:
        ids.update(m.node_id for m in rt.directory.members() if m.status == "active")
    if rt.config.hub_url and not rt.config.is_hub:
        ids.add(rt.config.hub_id)
    ids.update(p.node_id for p in rt.config.peers)
    ids.discard(rt.node_id)
    out = []
    for node_id in sorted(ids):
        info = peer_info(rt, node_id)
        if info is not None and info.base_url:
            out.append(info)
    return out
