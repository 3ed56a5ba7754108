"""Every page shows listing text, names and log entries as text, never as markup.

A listing whose title, summary and keywords carry script and attribute-breaking markup
goes into a center, and the hub receives it by sync; the audit log gets an entry with
markup in it and a staff user has a name made of every odd character names allow. Then
a signed-in admin crawls breadth-first every same-site link from ``/console`` (and on
the hub from ``/``, the marketplace), GET only, up to ``MAX_PAGES`` pages: no page may
contain the markup unescaped, every HTML page must send the Content-Security-Policy
header, and none may fail with a server error. Pages added later are crawled too.
"""

from __future__ import annotations

from collections import Counter, deque
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit

import aiohttp

from node.ui.accounts import create_user
from policies import default_policy_yaml
from tests.federation.network import NodeFactory, load_records, start_network
from tests.hub.test_search import PUBLIC_RULES
from tests.node.sample import sample_records
from tests.nodes import RunningNode
from tests.security.console_client import PASSWORD, Console

MAX_PAGES = 200
MAX_VARIANTS = 12
"""Query strings crawled per path (facet links combine without end)."""
SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
RAW = (SCRIPT, "<img src=x onerror=alert(1)>", "<script>")
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
ODD_NAME = "o.b-r_1@x.y"
SKIP = ("/ui/static/", "/console/logout")


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v]


def marked_listing(owner: str) -> dict[str, object]:
    record = next(r for r in sample_records(owner) if r["visibility"] == "public")
    record["id"] = f"{owner}-off-9999"
    record["title"] = {"en": f"Pump {SCRIPT} {BREAKOUT}", "zh": f"泵 {SCRIPT}"}
    record["summary"] = f"A summary {SCRIPT} and {BREAKOUT} and & < > ' \" too."
    record["keywords"] = [SCRIPT, BREAKOUT, "pump"]
    return record


def same_site(base: str, page: str, href: str) -> str | None:
    target = urldefrag(urljoin(page, href)).url
    parts, home = urlsplit(target), urlsplit(base)
    if (parts.scheme, parts.netloc) != (home.scheme, home.netloc):
        return None
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return None if path.startswith(SKIP) else path


async def crawl(client: Console, roots: list[str]) -> dict[str, str]:
    """Every page reached from ``roots``: path -> its HTML."""
    seen: dict[str, str] = {}
    queue = deque(roots)
    queued = set(roots)
    variants: Counter[str] = Counter()

    def follow(target: str | None) -> None:
        if target is None or target in queued:
            return
        bare = target.split("?", 1)[0]
        if variants[bare] >= MAX_VARIANTS:
            return
        variants[bare] += 1
        queued.add(target)
        queue.append(target)

    while queue and len(seen) < MAX_PAGES:
        path = queue.popleft()
        answer = await client.get(path)
        assert answer.status < 500, (path, answer.status, answer.text[:500])
        if answer.status in (301, 302, 303, 307, 308):
            follow(same_site(client.node.url, client.node.url + path, answer.location))
            continue
        if not answer.headers.get("Content-Type", "").startswith("text/html"):
            continue
        assert "Content-Security-Policy" in answer.headers, path
        assert "script-src 'self'" in answer.headers["Content-Security-Policy"], path
        for raw in RAW:
            assert raw not in answer.text, (path, raw)
        seen[path] = answer.text
        parser = Links()
        parser.feed(answer.text)
        for href in parser.hrefs:
            follow(same_site(client.node.url, client.node.url + path, href))
    return seen


async def mark_up(node: RunningNode, http: aiohttp.ClientSession) -> None:
    """An admin named oddly, and an audit entry (a policy author) with markup."""
    rt = node.runtime
    create_user(rt.engine, "ada", PASSWORD, "admin", now_ms=rt.clock())
    create_user(rt.engine, ODD_NAME, PASSWORD, "editor", now_ms=rt.clock(), actor=SCRIPT)
    status, current = await node.admin(http, "GET", "/admin/v1/policy")
    assert status == 200
    text = current["text"] + "\n# again\n"
    status, body = await node.admin(
        http, "PUT", "/admin/v1/policy", params={"author": BREAKOUT}, data=text.encode()
    )
    assert status == 200, body


async def test_center_console_pages_are_escaped(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    node = await node_factory("th")
    status, body = await node.admin(http, "POST", "/admin/v1/listings", json=marked_listing("th"))
    assert status == 201, body
    await mark_up(node, http)
    async with Console(node) as client:
        assert (await client.login("ada")).status == 303
        pages = await crawl(client, ["/console"])
    assert {"/console", "/console/users", "/console/audit"} <= set(pages), sorted(pages)
    assert ODD_NAME in pages["/console/users"]
    assert any(ESCAPED in html for html in pages.values())
    audit = pages["/console/audit"]
    assert ESCAPED in audit and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in audit


async def test_hub_pages_are_escaped(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_network(node_factory, ["th"], load_sample=False)
    th = net.nodes["th"]
    th.runtime.policy.apply(default_policy_yaml("cn") + PUBLIC_RULES, author="test")
    load_records(th, [marked_listing("th"), *sample_records("th")[:3]])
    runs = await net.hub.sync.sync_all()
    assert [r.error for r in runs] == [None]
    await mark_up(net.hub, http)
    async with Console(net.hub) as client:
        home = await client.get("/?" + "q=pump")
        assert home.status == 200 and ESCAPED in home.text, home.text[:2000]
        assert (await client.login("ada")).status == 303
        pages = await crawl(client, ["/", "/console"])
    listing_pages = [p for p in pages if p.startswith("/market/listing/th/th-off-9999")]
    assert listing_pages, sorted(pages)
    assert ESCAPED in pages[listing_pages[0]]
