"""A page's error is a page (in the visitor's language), an API's error stays JSON."""

from __future__ import annotations

import io

import aiohttp

from tests.federation.network import NodeFactory


async def test_missing_page_and_oversized_form_are_pages(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("th", max_body_bytes=1 << 20)
    async with http.get(node.url + "/console/no-such-page?lang=vi") as resp:
        assert resp.status == 404
        assert resp.content_type == "text/html"
        html = await resp.text()
    assert '<html lang="vi">' in html and 'role="alert"' in html

    body = io.BytesIO(b"x" * ((1 << 20) + 1))
    async with http.post(node.url + "/console/listings/import", data=body) as resp:
        assert resp.status == 413
        assert resp.content_type == "text/html"
        assert "(1 MB)" in await resp.text()

    async with http.get(node.url + "/admin/v1/no-such-thing") as resp:
        assert resp.status in (401, 404)
        assert resp.content_type == "application/json"
    async with http.get(node.url + "/federation/v1/nothing") as resp:
        assert resp.content_type == "application/json"
