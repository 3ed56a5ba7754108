"""This node's identity document (DESIGN 6.1 ``type: node``), self-signed, built through
its wire model (``protocol.objects.NodeIdentity``)."""

from __future__ import annotations

from typing import Any

from protocol import PROTOCOL_NAME, PROTOCOL_VERSION
from protocol.hub_objects import build
from protocol.keys import KeyStore, full_key_name
from protocol.objects import NodeIdentity
from protocol.signing import sign_object


def identity_document(
    *, node_id: str, name: str, country: str, base_url: str, keys: KeyStore, now_ms: int
) -> dict[str, Any]:
    verify_keys: dict[str, Any] = {
        keys.active.name: {"key": keys.verify_keys()[keys.active.name].b64}
    }
    if keys.active.valid_until is not None:
        verify_keys[keys.active.name]["valid_until"] = keys.active.valid_until
    old = {
        full_key_name(k.key_id): {
            "key": keys.verify_keys()[full_key_name(k.key_id)].b64,
            "expired_at": k.expired_at,
        }
        for k in keys.old
    }
    doc = build(
        NodeIdentity,
        type="node",
        v=PROTOCOL_VERSION,
        issuer=node_id,
        ts=now_ms,
        node_id=node_id,
        name=name or node_id,
        country=country,
        base_url=base_url,
        protocols=[PROTOCOL_NAME],
        verify_keys=verify_keys,
        old_verify_keys=old,
        # Each retired key's signed hand-over to the next: who pinned an old key (the
        # members pin the hub's) follows them to the current one.
        key_transitions=keys.transitions,
    )
    return sign_object(doc, node_id, keys.active)
