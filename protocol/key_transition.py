"""Passing trust from a retired signing key to its successor.

A node that rotates its key signs, with the key it retires, a ``key_transition`` naming
the new key, and publishes the chain of these in its identity document. Whoever pinned
an earlier key (every national node pins the hub's key at ``init``) follows the chain
from the key it pinned to the current one and re-pins, trusting nothing that its pinned
key, or a key it vouched for, did not sign. This is how TUF rotates its root keys.

A transition is a signed object (DESIGN 6.1)::

    {"type": "key_transition", "v": 1, "issuer": "cn", "ts": ...,
     "old": "ed25519:1", "new": {"name": "ed25519:2", "key": "<base64url>"},
     "signatures": {"cn": {"ed25519:1": "..."}}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from protocol import PROTOCOL_VERSION
from protocol.b64 import b64url_decode, b64url_encode
from protocol.hub_objects import KeyTransition, build
from protocol.keys import KeyStore, VerifyKeyInfo
from protocol.signing import SignatureError, sign_object, verify_object

TRANSITION = "key_transition"
MAX_CHAIN = 64


def rotate_with_transition(
    store: KeyStore, issuer: str, now_ms: int, seed: bytes | None = None
) -> KeyStore:
    """``store.rotate`` plus the transition to the new key, signed by the retiring one
    (at ``now_ms - 1``: while it is still valid; it expires at ``now_ms``)."""
    rotated = store.rotate(now_ms, seed=seed)
    statement = sign_object(
        build(
            KeyTransition,
            type=TRANSITION,
            v=PROTOCOL_VERSION,
            issuer=issuer,
            ts=now_ms - 1,
            old=store.active.name,
            new={"name": rotated.active.name, "key": b64url_encode(rotated.active.public)},
        ),
        issuer,
        store.active,
    )
    return replace(rotated, transitions=[*store.transitions, statement])


def follow_transitions(pinned: bytes, transitions: Any, issuer: str) -> bytes:
    """The newest key reachable from ``pinned``: each step a transition of ``issuer``
    signed by the key reached so far. ``pinned`` itself when none applies; anything
    malformed, forged or circular is skipped. ``transitions`` is untrusted input."""
    chain: Sequence[Any] = transitions if isinstance(transitions, list) else []
    current = pinned
    seen = {pinned}
    for _ in range(min(len(chain), MAX_CHAIN)):
        step = next((new for t in chain if (new := _successor(t, current, issuer))), None)
        if step is None or step in seen:
            break
        seen.add(step)
        current = step
    return current


def _successor(statement: Any, current: bytes, issuer: str) -> bytes | None:
    """The key ``statement`` hands over to, if ``current`` signed it; else None."""
    if not isinstance(statement, dict) or statement.get("type") != TRANSITION:
        return None
    if statement.get("issuer") != issuer:
        return None
    sigs = statement.get("signatures")
    names = sigs.get(issuer) if isinstance(sigs, dict) else None
    if not isinstance(names, dict):
        return None
    try:
        verify_object(statement, issuer, {name: VerifyKeyInfo(current) for name in names})
        new = b64url_decode(str(statement["new"]["key"]))
    except (SignatureError, KeyError, TypeError, ValueError):
        return None
    return new if len(new) == 32 else None


def handed_over(known: Mapping[str, bytes], transitions: Any, issuer: str) -> dict[str, bytes]:
    """The key names that a chain of hand-overs from ``known`` (key name -> key) vouches
    for, with their keys: each step a transition of ``issuer`` whose ``old`` is a name
    known or reached so far and which that name's key signed. Names in ``known`` are never
    in the answer: a hand-over only ever introduces a new name. Untrusted input."""
    chain: Sequence[Any] = transitions if isinstance(transitions, list) else []
    reached = dict(known)
    out: dict[str, bytes] = {}
    for _ in range(min(len(chain), MAX_CHAIN)):
        grew = False
        for statement in chain[:MAX_CHAIN]:
            if not isinstance(statement, dict):
                continue
            old, new = statement.get("old"), statement.get("new")
            name = new.get("name") if isinstance(new, dict) else None
            if not isinstance(old, str) or old not in reached or not isinstance(name, str):
                continue
            if name in reached:
                continue
            key = _successor(statement, reached[old], issuer)
            if key is not None:
                reached[name] = out[name] = key
                grew = True
        if not grew:
            break
    return out
