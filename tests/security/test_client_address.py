"""The client address behind trusted reverse proxies (``node.web.client``): the rightmost
X-Forwarded-For entry that is not a trusted proxy, and the TCP peer otherwise."""

from __future__ import annotations

from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from node.config import NodeConfig
from node.web.client import client_address, counted_as, networks


def _request(peer: str, *forwarded: str) -> web.Request:
    headers = [("X-Forwarded-For", line) for line in forwarded]
    transport = mock.Mock()
    transport.get_extra_info.return_value = (peer, 40_000)
    return make_mocked_request("GET", "/", headers=headers, transport=transport)


TRUSTED = networks(["127.0.0.1", "::1", "10.0.0.0/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("198.51.100.7", ("203.0.113.9",), "198.51.100.7"),  # not a proxy: header ignored
        ("127.0.0.1", (), "127.0.0.1"),  # a proxy that says nothing
        ("127.0.0.1", ("203.0.113.9",), "203.0.113.9"),
        ("127.0.0.1", ("1.2.3.4, 203.0.113.9",), "203.0.113.9"),  # the left is the client's
        ("127.0.0.1", ("1.2.3.4", "203.0.113.9, 10.1.2.3"), "203.0.113.9"),  # two proxies
        ("::1", ("2001:db8::5",), "2001:db8::5"),
        ("127.0.0.1", ("not-an-address, 203.0.113.9",), "203.0.113.9"),
        ("127.0.0.1", ("203.0.113.9, garbage",), "127.0.0.1"),  # the proxy's entry is bad
        ("127.0.0.1", ("10.9.9.9",), "10.9.9.9"),  # only proxies: the farthest
    ],
)
def test_the_client_address_through_trusted_proxies(
    peer: str, forwarded: tuple[str, ...], expected: str
) -> None:
    assert client_address(_request(peer, *forwarded), TRUSTED) == expected


def test_no_trusted_proxy_means_the_peer_always() -> None:
    request = _request("127.0.0.1", "203.0.113.9")
    assert client_address(request, networks([])) == "127.0.0.1"


def test_a_trusted_proxy_that_is_not_an_address_is_refused() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        NodeConfig(node_id="th", country="TH", trusted_proxies=["proxy.example"])
    assert NodeConfig(node_id="th", country="TH").trusted_proxies == []  # named, never assumed


@pytest.mark.parametrize(
    ("address", "counted"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8::ffff:1", "2001:db8::/64"),  # another address of the same /64
        ("2001:db8:0:1::1", "2001:db8:0:1::/64"),  # the next /64
        ("::ffff:198.51.100.7", "198.51.100.7"),  # IPv4 written as IPv6
        ("unknown", "unknown"),
    ],
)
def test_limits_count_an_ipv6_address_by_its_64_and_ipv4_as_itself(
    address: str, counted: str
) -> None:
    assert counted_as(address) == counted
