"""A console user without a browser: an aiohttp client with its own cookie jar that
signs in through the real login form (its pre-session token included), and reads the
CSRF token from the pages it gets."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from node.clock import system_clock
from node.ui.sessions import COOKIE
from tests.nodes import RunningNode

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_LOGIN = re.compile(r'name="login_token" value="([^"]+)"')


@dataclass
class Answer:
    status: int
    text: str
    headers: dict[str, str]
    cookies: list[str] = field(default_factory=list)

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


class Console:
    """One browser-like client of one node's console."""

    def __init__(self, node: RunningNode, headers: dict[str, str] | None = None) -> None:
        self.node = node
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), raise_for_status=False, headers=headers
        )

    async def close(self) -> None:
        await self.http.close()

    async def __aenter__(self) -> Console:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def cookie(self, name: str = COOKIE) -> str | None:
        for c in self.http.cookie_jar:
            if c.key == name:
                return c.value
        return None

    def set_cookie(self, value: str, name: str = COOKIE) -> None:
        self.http.cookie_jar.update_cookies({name: value}, URL(self.node.url))

    async def request(self, method: str, path: str, **kwargs: Any) -> Answer:
        kwargs.setdefault("allow_redirects", False)
        async with self.http.request(method, self.node.url + path, **kwargs) as resp:
            text = await resp.text(errors="replace")
            return Answer(
                resp.status, text, dict(resp.headers), resp.headers.getall("Set-Cookie", [])
            )

    async def get(self, path: str) -> Answer:
        return await self.request("GET", path)

    async def post(self, path: str, data: dict[str, str]) -> Answer:
        return await self.request("POST", path, data=data)

    async def login(self, name: str, password: str = PASSWORD) -> Answer:
        page = await self.get("/console/login")
        token = _LOGIN.search(page.text)
        assert token, page.text
        return await self.post(
            "/console/login",
            {"name": name, "password": password, "login_token": token.group(1), "next": ""},
        )

    async def csrf(self, path: str = "/console") -> str:
        page = await self.get(path)
        found = _CSRF.search(page.text)
        assert page.status == 200 and found, (page.status, page.text[:500])
        return found.group(1)


class ManualClock:
    """A clock the test moves by hand (``node_factory(..., clock=clock)``)."""

    def __init__(self) -> None:
        self.now = system_clock()

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms
