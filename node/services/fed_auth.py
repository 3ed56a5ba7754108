"""Checking the ``CATTC-Sig`` of an incoming federation call (DESIGN 6, issue: Federation auth).

Order matters, cheapest and body-free first, so that a stranger costs next to nothing:
``check_header`` (parsed, addressed to this node, within the time window: no state at
all), then ``caller_key`` (a known, active origin and a key valid at ``created``: one
directory read), and only then may the caller's body be read; ``check_body`` verifies
the signature over it and records the nonce, only after the signature verified, so
nobody can burn another node's nonces.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from node.services.peers import PinnedKeys, peer_info
from node.storage.models import SeenNonceRow
from protocol.request_sig import (
    MAX_SKEW_MS,
    RequestSignature,
    RequestSignatureError,
    check_signature,
    parse_header,
)

if TYPE_CHECKING:
    from node.runtime import NodeRuntime


class UnknownKey(RequestSignatureError):
    """The origin is known but the key is not: refetch its identity, then try again."""


def check_header(rt: NodeRuntime, header: str | None) -> RequestSignature:
    """The header parsed, for this node, created within the window: no database, no body."""
    sig = parse_header(header)
    if sig.destination != rt.node_id:
        raise RequestSignatureError(
            "wrong_destination", f"request is for {sig.destination!r}, this is {rt.node_id!r}"
        )
    if abs(rt.clock() - sig.created) > MAX_SKEW_MS:
        raise RequestSignatureError(
            "created_out_of_window", "request created more than 5 minutes from this node's clock"
        )
    return sig


def caller_key(rt: NodeRuntime, sig: RequestSignature) -> bytes:
    """The public key ``sig`` claims, if its origin is a known, active node and the key is
    valid at ``created``. Reads the directory: run it off the event loop."""
    peer = peer_info(rt, sig.origin)
    if peer is None:
        raise RequestSignatureError("unknown_origin", f"{sig.origin!r} is not a known node")
    if peer.status == "suspended":
        raise RequestSignatureError("member_suspended", f"{sig.origin!r} is suspended")
    info = PinnedKeys(peer).get(sig.key)
    if info is None:
        raise UnknownKey("key_not_valid", f"key {sig.key} of {sig.origin} is not known")
    if not info.valid_at(sig.created):
        raise RequestSignatureError(
            "key_not_valid", f"key {sig.key} of {sig.origin} is not valid at {sig.created}"
        )
    return info.key


def check_body(
    rt: NodeRuntime,
    sig: RequestSignature,
    public_key: bytes,
    *,
    method: str,
    target: str,
    body: bytes,
) -> None:
    """The signature over the request and its body, then the nonce (recorded once)."""
    check_signature(sig, method=method, target=target, body=body, public_key=public_key)
    _record_nonce(rt, sig, rt.clock())


def verify_request(
    rt: NodeRuntime, header: str | None, *, method: str, target: str, body: bytes
) -> RequestSignature:
    """All three checks at once, for a request whose body is already in hand."""
    sig = check_header(rt, header)
    key = caller_key(rt, sig)
    check_body(rt, sig, key, method=method, target=target, body=body)
    return sig


def _record_nonce(rt: NodeRuntime, sig: RequestSignature, now: int) -> None:
    with Session(rt.engine) as session:
        try:
            with session.begin():
                session.execute(
                    insert(SeenNonceRow),
                    [{"origin": sig.origin, "nonce": sig.nonce, "created": sig.created}],
                )
        except IntegrityError as exc:
            raise RequestSignatureError(
                "nonce_reused", "this nonce was used before: replayed request"
            ) from exc
        if secrets.randbelow(64) == 0:  # about 1 call in 64 also purges the old window
            with session.begin():
                session.execute(
                    delete(SeenNonceRow).where(SeenNonceRow.created < now - 2 * MAX_SKEW_MS)
                )
