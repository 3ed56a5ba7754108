"""Keys change only by hand-over (issue: trust the hub).

Whoever controls what a member's URL serves can publish a self-signed identity document
with any key in it. So what is learnt from such a document (the hub's refetch when a
member signs with a key it does not know yet) may only *add*: a key name never seen
before, and a shorter life for a known key (the member retired it). A known name never
gets another key, never comes back to life and is never dropped that way; only the
hub operator, by hand (``cattc directory update --key``), may replace one.

Each key name remembers where it came from (``SOURCES``), kept beside the member's keys.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol.b64 import b64url_decode, b64url_encode
from protocol.key_transition import handed_over

logger = logging.getLogger(__name__)

OPERATOR = "operator"  # given by the hub operator (cattc directory add/update --key)
FETCH = "fetch"  # read from the member's self-signed identity document at its URL
TRANSITION = "transition"  # vouched for by a hand-over signed by a key already known
DIRECTORY = "directory"  # a node's mirror: as the hub's signed directory says
SOURCES = (OPERATOR, FETCH, TRANSITION, DIRECTORY)

Keys = dict[str, dict[str, Any]]


@dataclass
class Merged:
    keys: Keys
    sources: dict[str, str]
    added: list[str] = field(default_factory=list)
    shortened: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why, one line each

    @property
    def changed(self) -> bool:
        return bool(self.added or self.shortened)


def _bound(info: Mapping[str, Any], name: str) -> int | None:
    value = info.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _shorter(old: int | None, new: int | None) -> bool:
    """True if ``new`` ends a key's life earlier than ``old`` (None: no end)."""
    return new is not None and (old is None or new < old)


def merge_fetched(
    node_id: str, keys: Keys, sources: Mapping[str, str], identity: Mapping[str, Any]
) -> Merged:
    """``keys`` (name -> {key, valid_until | expired_at}) with what the verified, but
    self-signed, ``identity`` of ``node_id`` may add to them."""
    from node.services.directory import keys_from_identity  # one reader of identity keys

    out = Merged({n: dict(i) for n, i in keys.items()}, dict(sources))
    known = {n: b64url_decode(str(i["key"])) for n, i in keys.items()}
    vouched = handed_over(known, identity.get("key_transitions"), node_id)
    for name, info in keys_from_identity(dict(identity)).items():
        held = out.keys.get(name)
        if held is None:
            if name in vouched and b64url_decode(str(info["key"])) != vouched[name]:
                out.keys[name] = {"key": b64url_encode(vouched[name])}  # the hand-over wins
            else:
                out.keys[name] = info
            out.sources[name] = TRANSITION if name in vouched else FETCH
            out.added.append(name)
            continue
        if held["key"] != info["key"]:
            out.refused.append(f"{name} is known with another key; kept the known one")
            continue
        shortened, refused = _shorten(held, info)
        if not refused and _meaning(held) != _meaning(info):
            out.keys[name] = dict(info)  # no longer-lived than the known entry: as said
            shortened = True
        if shortened:
            out.shortened.append(name)
        out.refused.extend(
            f"{name}: a later {bound} than the known one is not taken" for bound in refused
        )
    return out


def _meaning(info: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if v is not None}


def _shorten(held: dict[str, Any], info: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """Take from ``info`` (the same key, as a URL describes it) only an earlier end of
    its life; the bounds it would move later or remove are returned, untaken."""
    shortened, refused = False, []
    for bound in ("expired_at", "valid_until"):
        mine, theirs = _bound(held, bound), _bound(info, bound)
        if _shorter(mine, theirs):
            held[bound] = theirs
            shortened = True
        elif mine is not None and theirs != mine:
            refused.append(bound)
    return shortened, refused


def merge_operator(
    node_id: str,
    stored: Keys,
    stored_sources: Mapping[str, str],
    given: Keys,
    given_sources: Mapping[str, str],
) -> tuple[Keys, dict[str, str], list[str]]:
    """What the operator's ``add``/``update`` makes of a member's keys: the stored ones
    (none dropped), then the given ones. A given key that changes a known name must be
    the operator's own (``--key``); fetched from the URL (``--fetch``), it is a conflict,
    named in the list returned."""
    keys = {n: dict(i) for n, i in stored.items()}
    sources = {n: stored_sources.get(n, OPERATOR) for n in stored}
    conflicts: list[str] = []
    for name, info in given.items():
        source = given_sources.get(name, OPERATOR)
        held = stored.get(name)
        if held is not None and held.get("key") != info.get("key") and source != OPERATOR:
            conflicts.append(
                f"key {name} of {node_id} is known with another key, and the one at its URL "
                "differs; only a hand-over signed by the old key, or --key by hand, replaces it"
            )
            continue
        if held is not None and held.get("key") == info.get("key") and source != OPERATOR:
            if not _shorten(keys[name], info)[1]:  # the URL may retire a key, not revive it
                keys[name] = dict(info)
            continue
        keys[name] = dict(info)
        if held is None or held.get("key") != info.get("key"):
            sources[name] = source
    return keys, sources, conflicts
