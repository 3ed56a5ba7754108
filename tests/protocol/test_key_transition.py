"""Following a chain of key hand-overs (``key_transition``) from a pinned key: only
steps signed by the key reached so far count; forged, altered, foreign, malformed and
circular statements are skipped."""

from __future__ import annotations

import copy
from typing import Any

from protocol.b64 import b64url_encode
from protocol.key_transition import follow_transitions, rotate_with_transition
from protocol.keys import KeyStore
from protocol.signing import sign_object

T0 = 1_790_000_000_000


def chain(rotations: int) -> tuple[list[KeyStore], list[dict[str, Any]]]:
    """Stores after 0..rotations rotations of the hub 'cn', and the final chain."""
    stores = [KeyStore.generate(T0, seed=b"\x01" * 32)]
    for i in range(rotations):
        stores.append(rotate_with_transition(stores[-1], "cn", T0 + 1000 * (i + 1)))
    return stores, stores[-1].transitions


def test_three_rotations_lead_from_the_first_key_to_the_last() -> None:
    stores, transitions = chain(3)
    assert len(transitions) == 3
    assert follow_transitions(stores[0].active.public, transitions, "cn") == stores[3].active.public
    # from a key in the middle of the chain too, and the current key stays where it is
    assert follow_transitions(stores[2].active.public, transitions, "cn") == stores[3].active.public
    assert follow_transitions(stores[3].active.public, transitions, "cn") == stores[3].active.public
    # the order they are listed in does not matter
    shuffled = list(reversed(transitions))
    assert follow_transitions(stores[0].active.public, shuffled, "cn") == stores[3].active.public


def test_each_hand_over_is_signed_by_the_retiring_key_while_it_was_valid() -> None:
    stores, transitions = chain(1)
    first = transitions[0]
    assert first["old"] == stores[0].active.name
    assert first["new"] == {
        "name": stores[1].active.name,
        "key": b64url_encode(stores[1].active.public),
    }
    assert set(first["signatures"]["cn"]) == {stores[0].active.name}
    retired = stores[1].verify_keys()[stores[0].active.name]
    assert retired.valid_at(first["ts"]) and not retired.valid_at(first["ts"] + 1)


def test_forged_altered_foreign_and_malformed_hand_overs_are_skipped() -> None:
    stores, transitions = chain(1)
    pinned = stores[0].active.public
    attacker = KeyStore.generate(T0, seed=b"\x66" * 32).active
    unsigned = {k: v for k, v in transitions[0].items() if k != "signatures"}
    forged = sign_object(
        {**unsigned, "new": {"name": "ed25519:9", "key": b64url_encode(attacker.public)}},
        "cn",
        attacker,  # not signed by the pinned key
    )
    altered = copy.deepcopy(transitions[0])
    altered["new"]["key"] = b64url_encode(attacker.public)  # signed, then changed
    foreign = copy.deepcopy(transitions[0])
    foreign["issuer"] = "th"
    short = sign_object(
        {**unsigned, "new": {"name": "ed25519:2", "key": b64url_encode(b"\x01" * 31)}},
        "cn",
        stores[0].active,  # signed by the pinned key, but hands over to no valid key
    )
    junk: list[Any] = [None, "x", [], {"type": "key_transition"}, {"signatures": {"cn": 1}}]
    for bad in [forged, altered, foreign, short, *junk]:
        assert follow_transitions(pinned, [bad], "cn") == pinned, bad
    assert follow_transitions(pinned, "not a list", "cn") == pinned
    # the genuine statement among them is still found
    assert follow_transitions(pinned, [*junk, forged, transitions[0]], "cn") == (
        stores[1].active.public
    )


def test_a_circular_chain_ends() -> None:
    a = KeyStore.generate(T0, seed=b"\x0a" * 32)
    b_store = rotate_with_transition(a, "cn", T0 + 1, seed=b"\x0b" * 32)
    back = rotate_with_transition(b_store, "cn", T0 + 2, seed=b"\x0a" * 32)  # B -> A again
    assert back.active.public == a.active.public
    # A -> B is followed; B -> A leads back to a key already passed: the walk stops at B
    assert follow_transitions(a.active.public, back.transitions, "cn") == b_store.active.public


def test_the_key_file_keeps_the_chain(tmp_path: Any) -> None:
    stores, transitions = chain(2)
    path = tmp_path / "keys.json"
    stores[2].save(path)
    assert KeyStore.load(path).transitions == transitions
