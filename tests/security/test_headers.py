"""Security headers on every answer, a dashboard that needs no inline code, and the admin
token's ``Bearer`` scheme in any case (RFC 9110 11.1). Real nodes on loopback ports; the
dashboard running under this policy in Chromium is tests/hub/test_dashboard.py."""

from __future__ import annotations

from html.parser import HTMLParser

import aiohttp
from multidict import CIMultiDictProxy

from tests.federation.network import NodeFactory, start_network
from tests.node.sample import sample_record


def assert_secure(headers: CIMultiDictProxy[str], what: str) -> None:
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("X-Frame-Options") == "DENY", what
    assert headers.get("Referrer-Policy") in ("no-referrer", "same-origin"), what
    csp = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, (what, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (what, csp)
    assert headers.get("Server") == "cattc", (what, headers.get("Server"))  # no versions


async def test_every_response_carries_the_security_headers(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_network(node_factory, ["th"], load_sample=False)
    hub, th = net.hub, net.nodes["th"]
    token = {"Authorization": f"Bearer {hub.token}"}
    requests: list[tuple[str, str, dict[str, str], bytes | None, int]] = [
        ("GET", "/healthz", {}, None, 200),
        ("GET", "/.well-known/cattc-node", {}, None, 200),
        ("GET", "/admin/v1/listings", {}, None, 401),
        ("GET", "/admin/v1/listings", token, None, 200),
        ("POST", "/admin/v1/listings", token, b"{not json", 400),
        ("GET", "/admin/v1/listings/nope", token, None, 404),
        ("GET", "/no/such/route", {}, None, 404),
        ("DELETE", "/healthz", {}, None, 405),
        ("GET", "/federation/v1/feed", {}, None, 401),
        ("GET", "/hub/dashboard", {}, None, 200),
        ("GET", "/hub/static/dashboard.js", {}, None, 200),
        ("GET", "/hub/status", token, None, 200),
        ("GET", "/metrics", token, None, 200),
        ("GET", "/api/v1/search?q=rice", {}, None, 200),
    ]
    for method, path, headers, body, status in requests:
        async with http.request(method, hub.url + path, headers=headers, data=body) as resp:
            assert resp.status == status, (path, await resp.text())
            assert_secure(resp.headers, f"{method} {path}")
    # A member node (no hub routes) answers the same way.
    async with http.get(th.url + "/hub/dashboard") as resp:
        assert resp.status == 404
        assert_secure(resp.headers, "member /hub/dashboard")


class _InlineFinder(HTMLParser):
    """Everything in a page that a CSP without 'unsafe-inline' would block."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.sources: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"<{tag} {name}=...>")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            self._in_script = True
            src = names.get("src")
            if src:
                self.sources.append(src)
        if tag == "link" and names.get("rel") == "stylesheet" and names.get("href"):
            self.sources.append(str(names["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("<script> with a body")


async def test_the_dashboard_needs_no_inline_script_or_style(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    hub = await node_factory("cn", is_hub=True)
    async with http.get(hub.url + "/hub/dashboard") as resp:
        assert resp.status == 200
        csp = resp.headers["Content-Security-Policy"]
        page = await resp.text()
    directives = dict((d.split()[0], d.split()[1:]) for d in csp.split(";") if d.strip())
    assert directives["script-src"] == ["'self'"] and directives["style-src"] == ["'self'"]
    assert directives["default-src"] == ["'none'"]
    finder = _InlineFinder()
    finder.feed(page)
    assert finder.inline == []
    assert sorted(finder.sources) == ["/hub/static/dashboard.css", "/hub/static/dashboard.js"]
    types = {"/hub/static/dashboard.css": "text/css", "/hub/static/dashboard.js": "text/javascript"}
    for src in finder.sources:
        async with http.get(hub.url + src) as resp:
            assert resp.status == 200 and resp.content_type == types[src]
            text = await resp.text()
            assert "style=" not in text  # no inline style attributes built by the script
    # Only those files: nothing else of the package, however the name is spelled.
    for name in ("dashboard.html", "..%2Fapp.py", "%2E%2E%2Fhub_routes.py", "x.js"):
        async with http.get(hub.url + "/hub/static/" + name) as resp:
            assert resp.status == 404, name


async def test_bearer_scheme_is_case_insensitive(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("vn")
    for n, scheme in enumerate(("bearer", "BEARER", "bEaReR")):
        headers = {"Authorization": f"{scheme} {node.token}"}
        async with http.get(node.url + "/admin/v1/listings", headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        record = {**sample_record("vn-off-0001"), "id": f"vn-off-900{n}"}
        async with http.post(node.url + "/admin/v1/listings", headers=headers, json=record) as resp:
            assert resp.status == 201, await resp.text()
        # The scheme's case is free; the token and the scheme's name are not.
        for wrong in (f"{scheme} {node.token}x", f"{scheme}x {node.token}", f"Basic {node.token}"):
            async with http.get(
                node.url + "/admin/v1/listings", headers={"Authorization": wrong}
            ) as resp:
                assert resp.status == 401, wrong


async def test_page_assets_come_from_a_list_made_at_start_never_from_the_url(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    """A name of 256 characters made aiohttp's static route raise "File name too long"
    (a 500 and a traceback a stranger could repeat); names are now looked up in a list."""
    net = await start_network(node_factory, ["th"], load_sample=False)
    th = net.nodes["th"]
    async with http.get(th.url + "/ui/static/console-shared.css") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/css")
        assert_secure(resp.headers, "a style sheet")
        assert b"{" in await resp.read()
    async with http.head(th.url + "/ui/static/console-import.js") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].split(";")[0].endswith("/javascript")
    bad = ["a" * 256, "a" * 5000, "%2e%2e%2fconfig.toml", "..%2f..%2fnode.toml", "templating.py"]
    for name in bad:
        async with http.get(th.url + "/ui/static/" + name) as resp:
            assert resp.status == 404, name
            assert_secure(resp.headers, name)
            assert "Traceback" not in await resp.text()
