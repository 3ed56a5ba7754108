"""Signed HTTP calls to other nodes (``CATTC-Sig``), with timeouts and a response cap.

The cap is ``MAX_RESPONSE_BYTES`` unless the caller names a smaller one (the feed reader
names the protocol's page limit, which every node's pages stay within)."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from protocol.canonical import parse_json
from protocol.keys import NodeKey
from protocol.request_sig import sign_request

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
RESPONSE_TOO_LARGE = "response_too_large"


class PeerError(Exception):
    """A call to a peer failed: network, HTTP status, oversize or unparsable body."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(printable(message))
        self.status = status
        self.code = code if code is None or _CODE.fullmatch(code) else None


_CODE = re.compile(r"[a-z0-9_]{1,64}")
MAX_MESSAGE_CHARS = 500
PARSE_ON_LOOP_BYTES = 256 * 1024  # ~2 ms of parsing; a larger answer is parsed on a thread


def printable(text: str) -> str:
    """``text`` as one line that cannot drive a terminal or forge a log line: what a peer
    wrote (its error's message and code) goes into the logs and onto the operator's
    screen, where a newline began a log line of its own and ESC moved the cursor. Each
    character that is not printable (controls, line breaks, direction overrides) is
    written as its escape; at most ``MAX_MESSAGE_CHARS`` are kept."""
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


@dataclass
class PeerResponse:
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return parse_json(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PeerError(f"response is not valid JSON ({exc})", status=self.status) from exc


class PeerClient:
    """Makes signed requests as ``origin`` with the key ``key_provider()`` returns."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        origin: str,
        key_provider: Callable[[], NodeKey],
        clock: Callable[[], int],
        *,
        timeout_s: float = 30.0,
    ) -> None:
        self.session = session
        self.origin = origin
        self.key_provider = key_provider
        self.clock = clock
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def request(
        self,
        method: str,
        base_url: str,
        destination: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: bytes = b"",
        max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> PeerResponse:
        args = (method, base_url, destination, path, query, body, max_bytes)
        resp = await self._request_once(*args)
        if method == "GET" and resp.status == 401 and _error(resp.body)[0] == "nonce_reused":
            # aiohttp resends a GET by itself, same headers and all, when a reused
            # connection drops after the peer took the request: the peer then sees our
            # nonce twice. A read is safe to repeat, so once more with a fresh signature.
            resp = await self._request_once(*args)
        return resp

    async def _request_once(
        self,
        method: str,
        base_url: str,
        destination: str,
        path: str,
        query: dict[str, Any] | None,
        body: bytes,
        max_bytes: int,
    ) -> PeerResponse:
        clean = {k: v for k, v in (query or {}).items() if v is not None}
        target = path + ("?" + urlencode(clean) if clean else "")
        sig = sign_request(
            method=method,
            target=target,
            origin=self.origin,
            destination=destination,
            body=body,
            key=self.key_provider(),
            now_ms=self.clock(),
        )
        headers = {"Authorization": sig.header()}
        if body:
            headers["Content-Type"] = "application/json"
        url = base_url.rstrip("/") + target
        # A large body goes as a stream (aiohttp warns that raw bytes would hold the loop).
        data = (io.BytesIO(body) if len(body) > 1024 * 1024 else body) if body else None
        try:
            async with self.session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,  # a peer answers itself: a 3xx is its answer
            ) as resp:
                if resp.content_length is not None and resp.content_length > max_bytes:
                    raise PeerError(
                        f"{destination} answered {resp.content_length} bytes for {path}, "
                        f"more than the {max_bytes} this node accepts",
                        status=resp.status,
                        code=RESPONSE_TOO_LARGE,
                    )
                return PeerResponse(resp.status, await read_capped(resp, max_bytes))
        except aiohttp.ClientPayloadError as exc:
            raise PeerError(f"truncated or corrupt response: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PeerError(f"{destination} unreachable: {exc.__class__.__name__} {exc}") from exc

    async def get_json(
        self,
        base_url: str,
        destination: str,
        path: str,
        query: dict[str, Any] | None = None,
        *,
        max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> Any:
        resp = await self.request(
            "GET", base_url, destination, path, query=query, max_bytes=max_bytes
        )
        raise_for_status(resp, destination)  # an error page need not be JSON
        if len(resp.body) > PARSE_ON_LOOP_BYTES:  # a directory, a custody list: not on the loop
            return await asyncio.to_thread(resp.json)
        return resp.json()


def raise_for_status(resp: PeerResponse, destination: str) -> None:
    """PeerError naming the peer's error code and message unless ``resp`` is a 200."""
    if resp.status != 200:
        code, message = _error(resp.body)
        said = f": {code}: {message}" if code or message else " (not a node's error answer)"
        raise PeerError(
            f"{destination} answered {resp.status}{said}", status=resp.status, code=code
        )


def _error(body: bytes) -> tuple[str | None, str | None]:
    """``(code, message)`` of an ``{"error": {...}}`` answer; Nones for anything else."""
    try:
        doc = parse_json(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict):
        return None, None
    code, message = err.get("code"), err.get("message")
    return (
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else None,
    )


async def read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    """The whole body, refusing more than ``cap`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await resp.content.read(65536):
        size += len(chunk)
        if size > cap:
            raise PeerError(
                f"response larger than {cap} bytes", status=resp.status, code=RESPONSE_TOO_LARGE
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def fetch_identity(session: aiohttp.ClientSession, base_url: str) -> Any:
    """The unauthenticated identity document of a node (verified by the caller)."""
    url = base_url.rstrip("/") + "/.well-known/cattc-node"
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=10), allow_redirects=False
        ) as resp:
            data = await read_capped(resp, 1024 * 1024)
            if resp.status != 200:
                raise PeerError(f"identity of {base_url}: HTTP {resp.status}", status=resp.status)
            return parse_json(data)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise PeerError(f"cannot fetch identity from {base_url}: {exc}") from exc
