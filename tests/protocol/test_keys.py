"""Node keys: key ids and names, rotation, and the key file (mode 0600, strict loading)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protocol.b64 import b64url_encode
from protocol.keys import (
    KeyFileError,
    KeyStore,
    VerifyKeyInfo,
    full_key_name,
    split_key_name,
    verify_key_from_b64,
)

T0 = 1_700_000_000_000
SEED = bytes(range(32))
PUBLIC_HEX = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"


@pytest.fixture
def store() -> KeyStore:
    return KeyStore.generate(T0, key_id="1", seed=SEED)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Run with umask 000, so that only an explicit mode can make a file private."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write(path: Path, data: Any, mode: int = 0o600) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    path.chmod(mode)
    return path


# key ids and names


@pytest.mark.parametrize("key_id", ["1", "a", "Z_9", "key_2025_01", "x" * 32, "_"])
def test_valid_key_ids(key_id: str) -> None:
    assert full_key_name(key_id) == f"ed25519:{key_id}"
    assert split_key_name(f"ed25519:{key_id}") == key_id


@pytest.mark.parametrize(
    "key_id", ["", "x" * 33, "a-b", "a:b", "a b", "a.b", "é", "1\n", "\n1", "１"]
)
def test_invalid_key_ids(key_id: str) -> None:
    with pytest.raises(ValueError, match="invalid key id"):
        full_key_name(key_id)
    with pytest.raises(ValueError, match="invalid key name"):
        split_key_name(f"ed25519:{key_id}")
    with pytest.raises(ValueError):
        KeyStore.generate(T0, key_id=key_id, seed=SEED)


@pytest.mark.parametrize("name", ["rsa:1", "ED25519:1", "ed25519", "1", "ed25519;1", ":1"])
def test_invalid_key_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid key name"):
        split_key_name(name)


def test_generate_from_seed_is_deterministic(store: KeyStore) -> None:
    assert store.active.public.hex() == PUBLIC_HEX
    assert store.active.key_id == "1"
    assert store.active.created == T0
    assert store.old == []
    assert store.verify_keys() == {"ed25519:1": VerifyKeyInfo(bytes.fromhex(PUBLIC_HEX))}
    # without a seed, every key is new
    assert KeyStore.generate(T0).active.public != KeyStore.generate(T0).active.public


def test_verify_key_from_b64() -> None:
    public = bytes.fromhex(PUBLIC_HEX)
    assert bytes(verify_key_from_b64(b64url_encode(public))) == public
    assert VerifyKeyInfo(public).b64 == b64url_encode(public)
    with pytest.raises(ValueError, match="32 bytes"):
        verify_key_from_b64(b64url_encode(public[:31]))
    with pytest.raises(ValueError):
        verify_key_from_b64(b64url_encode(public) + "=")


# rotation


def test_rotate_adds_a_key_and_keeps_the_old_public_key(store: KeyStore) -> None:
    rotated = store.rotate(T0 + 5000, seed=bytes(32))
    assert rotated.active.key_id == "2"
    assert rotated.active.created == T0 + 5000
    assert rotated.active.public != store.active.public
    assert [(k.key_id, k.public, k.expired_at) for k in rotated.old] == [
        ("1", store.active.public, T0 + 5000)
    ]
    keys = rotated.verify_keys()
    assert keys == {
        "ed25519:2": VerifyKeyInfo(rotated.active.public, None, None),
        "ed25519:1": VerifyKeyInfo(store.active.public, None, T0 + 5000),
    }
    # rotation returns a new store; the old one is unchanged
    assert store.active.key_id == "1" and store.old == []


def test_rotate_twice_keeps_every_old_key(store: KeyStore) -> None:
    twice = store.rotate(T0 + 1).rotate(T0 + 2)
    assert twice.active.key_id == "3"
    assert [(k.key_id, k.expired_at) for k in twice.old] == [("1", T0 + 1), ("2", T0 + 2)]
    assert set(twice.verify_keys()) == {"ed25519:1", "ed25519:2", "ed25519:3"}


def test_old_key_validity_window() -> None:
    info = VerifyKeyInfo(bytes(32), expired_at=1000)
    assert info.valid_at(999)
    assert not info.valid_at(1000)
    current = VerifyKeyInfo(bytes(32), valid_until=1000)
    assert current.valid_at(1000)
    assert not current.valid_at(1001)
    assert VerifyKeyInfo(bytes(32)).valid_at(2**62)


# key file


def test_save_writes_mode_0600(tmp_path: Path, store: KeyStore, permissive_umask: None) -> None:
    path = tmp_path / "node.key"
    store.save(path)
    assert _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["node.key"]  # no temporary file left


def test_save_over_an_open_file_makes_it_0600(tmp_path: Path, store: KeyStore) -> None:
    path = _write(tmp_path / "node.key", "{}", mode=0o644)
    store.save(path)
    assert _mode(path) == 0o600


def test_save_load_roundtrip(tmp_path: Path, store: KeyStore) -> None:
    rotated = store.rotate(T0 + 5000, seed=bytes(32))
    path = tmp_path / "node.key"
    rotated.save(path)
    loaded = KeyStore.load(path)
    assert loaded.active.key_id == "2"
    assert loaded.active.public == rotated.active.public
    assert loaded.active.sign(b"x") == rotated.active.sign(b"x")
    assert loaded.active.created == T0 + 5000
    assert loaded.old == rotated.old
    assert loaded.verify_keys() == rotated.verify_keys()
    assert loaded.to_json() == rotated.to_json()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_load_refuses_a_file_others_can_read(tmp_path: Path, store: KeyStore, mode: int) -> None:
    path = tmp_path / "node.key"
    store.save(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="chmod 600") as info:
        KeyStore.load(path)
    assert f"{mode:o}" in str(info.value)
    assert "node.key" in str(info.value)


def test_load_accepts_0400(tmp_path: Path, store: KeyStore) -> None:
    path = tmp_path / "node.key"
    store.save(path)
    path.chmod(0o400)
    assert KeyStore.load(path).active.public == store.active.public


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        KeyStore.load(tmp_path / "absent.key")


_DELETE = object()


def _valid_json(store: KeyStore) -> dict[str, Any]:
    data = store.rotate(T0 + 1).to_json()
    return json.loads(json.dumps(data))  # type: ignore[no-any-return]


def _malformed(store: KeyStore) -> list[tuple[str, Any]]:
    def edit(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
        data = _valid_json(store)
        target: Any = data
        for part in path[:-1]:
            target = target[part]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return data

    return [
        ("not json", "{not json"),
        ("json array", [1, 2]),
        ("json string", '"key"'),
        ("no active", edit(("active",), _DELETE)),
        ("active not object", edit(("active",), "x")),
        ("no seed", edit(("active", "seed"), _DELETE)),
        ("seed not base64url", edit(("active", "seed"), "!!!")),
        ("seed too short", edit(("active", "seed"), b64url_encode(bytes(31)))),
        ("seed padded", edit(("active", "seed"), b64url_encode(SEED) + "=")),
        ("bad key id", edit(("active", "key_id"), "a-b")),
        ("created not a number", edit(("active", "created"), "soon")),
        ("old not a list", edit(("old",), {"1": "x"})),
        ("old entry not object", edit(("old", 0), "x")),
        ("old entry without public", edit(("old", 0, "public"), _DELETE)),
        ("old key id invalid", edit(("old", 0, "key_id"), "bad id")),
        ("old public too short", edit(("old", 0, "public"), b64url_encode(bytes(31)))),
        ("old expired_at missing", edit(("old", 0, "expired_at"), _DELETE)),
    ]


def test_malformed_files_are_refused(tmp_path: Path, store: KeyStore) -> None:
    cases = _malformed(store)
    assert len(cases) == 17
    accepted: list[str] = []
    for label, content in cases:
        try:
            KeyStore.load(_write(tmp_path / "node.key", content))
        except KeyFileError:
            continue
        accepted.append(label)
    assert accepted == []
    # and the unedited file loads
    assert KeyStore.load(_write(tmp_path / "node.key", _valid_json(store))).active.key_id == "2"
