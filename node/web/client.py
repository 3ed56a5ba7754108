"""The address a request comes from, through the reverse proxies the node trusts.

The documented production set-up puts a TLS reverse proxy on the same machine in front of
``cattc serve``: every request then arrives from 127.0.0.1, and limits kept per client
address (sign-in throttling, the marketplace's message limits) would count every visitor
as one, so that anyone could pause sign-in for all. A request whose TCP peer is one of
``trusted_proxies`` is counted against the address its ``X-Forwarded-For`` names: the
rightmost entry that is not itself a trusted proxy (the left part of the header is what
the client wrote and proves nothing). From any other peer the header is ignored, and
``trusted_proxies`` is empty until the operator names the proxy (docs/operator-guide.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_HOPS = 32  # entries of X-Forwarded-For looked at, from the right


def networks(entries: Sequence[str]) -> tuple[Network, ...]:
    """The configured ``trusted_proxies`` as networks (config validates them)."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Sequence[Network]
) -> bool:
    return any(address in network for network in trusted)


def client_address(request: web.Request, trusted: Sequence[Network]) -> str:
    """The client's address: the TCP peer, or, when the peer is a trusted proxy, the
    nearest address in ``X-Forwarded-For`` that is not a trusted proxy. An entry that is
    not an address ends the walk at the hop before it (the peer when it is the first)."""
    peer = request.remote or "unknown"
    peer_address = _address(peer)
    if peer_address is None or not _trusted(peer_address, trusted):
        return peer
    hops = [h for line in request.headers.getall("X-Forwarded-For", ()) for h in line.split(",")]
    found = peer
    for hop in reversed(hops[-MAX_HOPS:]):
        address = _address(hop)
        if address is None:
            return found
        found = str(address)
        if not _trusted(address, trusted):
            return found
    return found


def counted_as(address: str) -> str:
    """What a limit per client address counts ``address`` as: an IPv6 address by its /64
    (one subscriber's or host's share: counted one by one, anyone holding a /64 had 2^64
    fresh addresses to send from), an IPv4 address written as IPv6 (``::ffff:a.b.c.d``)
    as that IPv4 address, anything else as it is."""
    found = _address(address)
    if isinstance(found, ipaddress.IPv6Address):
        if found.ipv4_mapped is not None:
            return str(found.ipv4_mapped)
        return str(ipaddress.IPv6Network((found, 64), strict=False))
    return address
