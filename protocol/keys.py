"""Ed25519 keys of a node: generate, name, rotate, save (mode 0600) and load.

A node holds one or more signing keys. Each has a key id matching ``[A-Za-z0-9_]{1,32}``
and is named ``ed25519:<key_id>`` on the wire. Rotation keeps the old public key in
``old_verify_keys`` with the moment it expired, so objects signed before stay valid, and
keeps the signed hand-overs from each retired key to the next (``protocol.key_transition``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey, VerifyKey

from protocol.b64 import b64url_decode, b64url_encode

KEY_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,32}\Z")  # \Z: "$" would accept a final "\n"
ALGORITHM = "ed25519"


class KeyFileError(ValueError):
    """The key file is missing, unreadable, too open, or malformed."""


def full_key_name(key_id: str) -> str:
    """``1`` -> ``ed25519:1``."""
    if not KEY_ID_RE.fullmatch(key_id):
        raise ValueError(f"invalid key id {key_id!r}")
    return f"{ALGORITHM}:{key_id}"


def split_key_name(name: str) -> str:
    """``ed25519:1`` -> ``1``; anything else is refused."""
    alg, _, key_id = name.partition(":")
    if alg != ALGORITHM or not KEY_ID_RE.fullmatch(key_id):
        raise ValueError(f"invalid key name {name!r}")
    return key_id


@dataclass(frozen=True)
class VerifyKeyInfo:
    """A public key and the window in which its signatures count.

    ``valid_until`` bounds a current key (None: open-ended); ``expired_at`` bounds an
    old one. A signature made at ``ts`` counts when ``ts`` falls before both bounds.
    """

    key: bytes
    valid_until: int | None = None
    expired_at: int | None = None

    def valid_at(self, ts: int) -> bool:
        if self.valid_until is not None and ts > self.valid_until:
            return False
        return not (self.expired_at is not None and ts >= self.expired_at)

    @property
    def b64(self) -> str:
        return b64url_encode(self.key)


@dataclass(frozen=True)
class NodeKey:
    """A signing key that this node holds."""

    key_id: str
    signing_key: SigningKey
    created: int
    valid_until: int | None = None

    @property
    def name(self) -> str:
        return full_key_name(self.key_id)

    @property
    def public(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    def sign(self, message: bytes) -> bytes:
        return bytes(self.signing_key.sign(message).signature)


@dataclass(frozen=True)
class OldKey:
    key_id: str
    public: bytes
    expired_at: int


@dataclass
class KeyStore:
    """All keys of one node: the active signing key plus the retired public keys."""

    active: NodeKey
    old: list[OldKey] = field(default_factory=list)
    # Signed ``key_transition`` statements, oldest first (protocol.key_transition).
    transitions: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def generate(cls, now_ms: int, key_id: str = "1", seed: bytes | None = None) -> KeyStore:
        full_key_name(key_id)
        sk = SigningKey(seed) if seed is not None else SigningKey.generate()
        return cls(active=NodeKey(key_id=key_id, signing_key=sk, created=now_ms))

    def rotate(self, now_ms: int, seed: bytes | None = None) -> KeyStore:
        """A new active key; the current one becomes an old key expiring now."""
        next_id = _next_key_id([self.active.key_id, *(k.key_id for k in self.old)])
        sk = SigningKey(seed) if seed is not None else SigningKey.generate()
        retired = OldKey(self.active.key_id, self.active.public, expired_at=now_ms)
        return KeyStore(
            active=NodeKey(key_id=next_id, signing_key=sk, created=now_ms),
            old=[*self.old, retired],
            transitions=list(self.transitions),
        )

    def verify_keys(self) -> dict[str, VerifyKeyInfo]:
        """Every key name this node has ever signed with, with its validity window."""
        out = {self.active.name: VerifyKeyInfo(self.active.public, self.active.valid_until, None)}
        for old in self.old:
            out[full_key_name(old.key_id)] = VerifyKeyInfo(old.public, None, old.expired_at)
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "active": {
                "key_id": self.active.key_id,
                "seed": b64url_encode(bytes(self.active.signing_key)),
                "created": self.active.created,
                "valid_until": self.active.valid_until,
            },
            "old": [
                {"key_id": k.key_id, "public": b64url_encode(k.public), "expired_at": k.expired_at}
                for k in self.old
            ],
            "transitions": self.transitions,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> KeyStore:
        try:
            act = data["active"]
            if not isinstance(act, dict):
                raise TypeError("'active' is not an object")
            seed = b64url_decode(str(act["seed"]))
            active = NodeKey(
                key_id=str(act["key_id"]),
                signing_key=SigningKey(seed),
                created=int(act["created"]),
                valid_until=None if act.get("valid_until") is None else int(act["valid_until"]),
            )
            full_key_name(active.key_id)
            olds = data.get("old", [])
            if not isinstance(olds, list):
                raise TypeError("'old' is not a list")
            old = [
                OldKey(str(o["key_id"]), b64url_decode(str(o["public"])), int(o["expired_at"]))
                for o in olds
            ]
            for k in old:
                # Checked here so that a bad file fails at load, not later in verify_keys().
                full_key_name(k.key_id)
                if len(k.public) != 32:
                    raise ValueError(f"old key {k.key_id!r} is not a 32-byte Ed25519 key")
            transitions = data.get("transitions", [])
            if not isinstance(transitions, list) or not all(
                isinstance(t, dict) for t in transitions
            ):
                raise TypeError("'transitions' is not a list of objects")
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyFileError(f"malformed key file: {exc}") from exc
        return cls(active=active, old=old, transitions=transitions)

    def save(self, path: Path) -> None:
        """Write atomically with mode 0600 (the file holds the private seed)."""
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.to_json(), fh, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> KeyStore:
        try:
            mode = path.stat().st_mode & 0o777
            raw = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyFileError(f"cannot read key file {path.name}: {exc.strerror}") from exc
        if mode & 0o077:
            raise KeyFileError(
                f"key file {path.name} is readable by others (mode {mode:o}); run chmod 600"
            )
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise KeyFileError(f"key file {path.name} is not JSON") from exc
        if not isinstance(data, dict):
            raise KeyFileError(f"key file {path.name} is not a JSON object")
        return cls.from_json(data)


def verify_key_from_b64(text: str) -> VerifyKey:
    raw = b64url_decode(text)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return VerifyKey(raw)


def _next_key_id(existing: list[str]) -> str:
    numeric = [int(k) for k in existing if k.isdigit()]
    candidate = str(max(numeric, default=0) + 1)
    while candidate in existing:  # pragma: no cover - only with hand-made ids
        candidate += "_"
    return candidate
