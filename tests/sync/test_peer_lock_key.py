"""The advisory lock of a pull names the schema: nodes of one name in two schemas of one
PostgreSQL database (test runs side by side) do not make each other's pulls skip."""

from __future__ import annotations

import hashlib

from node.services.peer_lock import lock_key


def test_the_key_names_the_schema_and_keeps_the_public_ones() -> None:
    assert lock_key("cn", "vn", "t_cn_a") != lock_key("cn", "vn", "t_cn_b")
    assert lock_key("cn", "vn", "t_cn_a") != lock_key("cn", "th", "t_cn_a")
    # In the default schema the key is the one earlier releases used (a rolling upgrade
    # keeps excluding the old workers).
    old = int.from_bytes(hashlib.sha256(b"cattc-pull:cn:vn").digest()[:8], "big", signed=True)
    assert lock_key("cn", "vn") == lock_key("cn", "vn", "public") == old
