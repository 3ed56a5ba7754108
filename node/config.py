"""Node configuration: a TOML file in the data directory, overridable by CATTC_* variables.

Every key of ``NodeConfig`` can be set in ``DATA_DIR/node.toml`` or by the environment
variable ``CATTC_<KEY>`` (upper case), which wins. ``known_env_vars()`` lists them, so the
compose file can be checked against the configuration.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from protocol.b64 import b64url_decode
from protocol.keys import split_key_name
from protocol.limits import MAX_PAGE_BYTES, MIN_PAGE_BYTES

CONFIG_FILE = "node.toml"
KEY_FILE = "signing_keys.json"
TOKEN_FILE = "admin.token"
POLICY_FILE = "policy.yaml"
DB_FILE = "node.db"
ENV_PREFIX = "CATTC_"


class ConfigError(Exception):
    """The configuration is missing or invalid; the message says what to do."""


NODE_ID = r"^[a-z][a-z0-9_]{1,31}$"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class PeerConfig(BaseModel):
    """A bilateral peer outside the hub's directory."""

    model_config = ConfigDict(extra="forbid")
    node_id: Annotated[str, Field(pattern=NODE_ID)]
    base_url: Annotated[str, Field(pattern=r"^https?://[^\s/]+")]
    key: str = ""

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        """The peer's pinned key: ``ed25519:N=KEY`` or ``KEY``, KEY its 32 bytes in
        base64url (anything else failed later, in every pull, as an unexpected error)."""
        if value:
            pinned_key_bytes(value)
        return value


def pinned_key_bytes(text: str) -> bytes:
    """The 32 bytes of a pinned key written ``ed25519:N=KEY`` or ``KEY`` (KEY in
    base64url); ValueError saying what is wrong with it."""
    name, _, key = text.rpartition("=") if "=" in text.rstrip("=") else ("", "", text)
    try:
        if name:
            split_key_name(name)
        raw = b64url_decode(key)
    except ValueError as exc:
        raise ValueError(f"key must be ed25519:N=KEY in base64url ({exc})") from exc
    if len(raw) != 32:
        raise ValueError("key must be a 32-byte Ed25519 public key (43 characters)")
    return raw


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    node_id: Annotated[str, Field(pattern=NODE_ID)]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    name: str = ""
    base_url: str = ""
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    database_url: str = ""
    admin_token_sha256: str = ""
    max_body_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    max_page_size: Annotated[int, Field(ge=1, le=1000)] = 1000
    max_page_bytes: Annotated[int, Field(ge=MIN_PAGE_BYTES, le=MAX_PAGE_BYTES)] = 4 * 1024 * 1024
    max_bytes_in_flight: Annotated[int, Field(ge=1024)] = 32 * 1024 * 1024
    max_connections: Annotated[int, Field(ge=1)] = 2048
    # Connections of one client address (an IPv6 /64) at once; 0: an eighth of
    # max_connections, at least 64. A trusted proxy's address has no share.
    max_connections_per_address: Annotated[int, Field(ge=0)] = 0
    header_timeout_seconds: Annotated[float, Field(gt=0, le=3_600)] = 30.0
    body_timeout_seconds: Annotated[float, Field(gt=0, le=3_600)] = 30.0
    # Addresses (or networks) of reverse proxies whose X-Forwarded-For is believed: a
    # request from one of them is counted against the address the proxy saw, not the
    # proxy's own (sign-in throttling, the marketplace's message limits). None by
    # default: the header is anyone's to write until a proxy is named here.
    trusted_proxies: list[str] = []
    log_level: str = "INFO"
    hub_id: str = "cn"
    hub_url: str = ""
    hub_key: str = ""
    is_hub: bool = False
    sync_interval_seconds: Annotated[float, Field(gt=0, le=86_400)] = 60.0  # a day at most
    sync_jitter_seconds: Annotated[float, Field(ge=0, le=3_600)] = 5.0
    # Listings held of one origin at most: a member's listings past it are quarantined
    # (``over_listing_limit``) until some of its copies go, so that no member can fill
    # this node's disk and its matching worker's memory. The network at 100x holds
    # ~20,000 per member; raise it for a member that holds more, then pull that member
    # again from the start (``cattc sync now --peer ID --from-start``).
    max_listings_per_member: Annotated[int, Field(ge=1)] = 100_000
    # Refused items kept of one member for the operator to read, the newest: older ones
    # are deleted (the hub's monitor still counts every refused item).
    max_quarantine_per_member: Annotated[int, Field(ge=1)] = 1_000
    # Match notices about one listing to its owner in a day, at most (the hub): the rest
    # are held back for a later match, so that no member can bury another's notices by
    # publishing and withdrawing listings under new ids.
    notices_per_listing_per_day: Annotated[int, Field(ge=1)] = 30
    # Whether a member reads the feeds of the directory's other members (false: only the
    # hub's feed and ``peers``). The hub reads every member's whatever this says.
    pull_members: bool = True
    peers: list[PeerConfig] = []

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        """``port = true`` was taken as port 1: a number is never true or false."""
        field = cls.model_fields[info.field_name] if info.field_name else None
        if isinstance(value, bool) and field is not None and field.annotation in (int, float):
            raise ValueError("must be a number, not true or false")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an address or network"
                ) from exc
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        return value

    @field_validator("hub_key")
    @classmethod
    def _hub_key(cls, value: str) -> str:
        if value:
            try:
                raw = b64url_decode(value)
            except ValueError as exc:
                raise ValueError("hub_key must be the hub's public key in base64url") from exc
            if len(raw) != 32:
                raise ValueError("hub_key must be a 32-byte Ed25519 public key (43 characters)")
        return value

    def resolved_database_url(self, data_dir: Path) -> str:
        return self.database_url or f"sqlite:///{(data_dir / DB_FILE).resolve()}"

    def resolved_base_url(self) -> str:
        return self.base_url or f"http://{self.host}:{self.port}"


def known_env_vars() -> frozenset[str]:
    return frozenset(ENV_PREFIX + name.upper() for name in NodeConfig.model_fields)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in NodeConfig.model_fields:
        value = environ.get(ENV_PREFIX + name.upper())
        if value is not None and name == "trusted_proxies":  # a list: comma-separated
            out[name] = [entry.strip() for entry in value.split(",") if entry.strip()]
        elif value is not None and name != "peers":
            out[name] = value
    return out


def load_config(data_dir: Path, environ: Mapping[str, str] | None = None) -> NodeConfig:
    """Read DATA_DIR/node.toml and apply CATTC_* overrides."""
    path = data_dir / CONFIG_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{data_dir} is not a node data directory (no {CONFIG_FILE}); run 'cattc init' first"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid TOML: {exc}") from exc
    raw.update(_env_overrides(os.environ if environ is None else environ))
    try:
        return NodeConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"invalid configuration: {where}: {err['msg']}") from exc


def save_config(data_dir: Path, config: NodeConfig) -> None:
    data = config.model_dump(exclude_defaults=False)
    data = {k: v for k, v in data.items() if v is not None}
    (data_dir / CONFIG_FILE).write_text(tomli_w.dumps(data), encoding="utf-8")


def save_hub_key(data_dir: Path, hub_key: str) -> None:
    """Pin ``hub_key`` in DATA_DIR/node.toml; nothing else of the file changes (the
    CATTC_* overrides of this process are not written into it)."""
    config = load_config(data_dir, environ={})
    save_config(data_dir, config.model_copy(update={"hub_key": hub_key}))
