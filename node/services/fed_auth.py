"""Checking the ``CATTC-Sig`` of an incoming federation call (DESIGN 6, issue: Federation auth).

Order matters: cheap, stateless checks first; the nonce is recorded only after the
signature verified, so nobody can burn another node's nonces.
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


def verify_request(
    rt: NodeRuntime, header: str | None, *, method: str, target: str, body: bytes
) -> RequestSignature:
    sig = parse_header(header)
    if sig.destination != rt.node_id:
        raise RequestSignatureError(
            "wrong_destination", f"request is for {sig.destination!r}, this is {rt.node_id!r}"
        )
    now = rt.clock()
    if abs(now - sig.created) > MAX_SKEW_MS:
        raise RequestSignatureError(
            "created_out_of_window", "request created more than 5 minutes from this node's clock"
        )
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
    check_signature(sig, method=method, target=target, body=body, public_key=info.key)
    _record_nonce(rt, sig, now)
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
