"""A staff member's browser, without the browser: a session cookie and its CSRF token
for a user made on a node, and plain GETs and form POSTs to the console's pages; and
the rows the pages read that other parts write (the audit log, visitors' interest)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.storage.models import AuditRow, VisitorInterestRow
from node.ui.accounts import create_user
from node.ui.sessions import COOKIE, open_session
from tests.nodes import RunningNode

PASSWORD = "correct horse battery"


@dataclass
class Page:
    status: int
    text: str
    location: str

    def hidden(self, name: str) -> str:
        """The value of the hidden input ``name`` (as a browser would send it)."""
        found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', self.text)
        assert found, f"no hidden input {name!r} in the page"
        return html.unescape(found.group(1))


@dataclass
class Staff:
    http: aiohttp.ClientSession
    node: RunningNode
    name: str
    cookie: str
    csrf: str

    async def get(self, path: str) -> Page:
        headers = {"Cookie": f"{COOKIE}={self.cookie}"}
        async with self.http.get(
            self.node.url + path, headers=headers, allow_redirects=False
        ) as resp:
            return Page(resp.status, await resp.text(), resp.headers.get("Location", ""))

    async def post(self, path: str, data: dict[str, Any], *, csrf: bool = True) -> Page:
        headers = {"Cookie": f"{COOKIE}={self.cookie}"}
        form = {**data, "csrf_token": self.csrf} if csrf else dict(data)
        async with self.http.post(
            self.node.url + path, data=form, headers=headers, allow_redirects=False
        ) as resp:
            return Page(resp.status, await resp.text(), resp.headers.get("Location", ""))


def staff(http: aiohttp.ClientSession, node: RunningNode, name: str, role: str) -> Staff:
    """A signed-in ``role`` user ``name`` of ``node``."""
    rt = node.runtime
    user = create_user(rt.engine, name, PASSWORD, role, now_ms=rt.clock())
    token, session = open_session(rt.engine, user.id, now_ms=rt.clock())
    return Staff(http, node, name, token, session.csrf)


def audit_entries(node: RunningNode, action: str) -> list[AuditRow]:
    with Session(node.runtime.engine) as session:
        rows = session.scalars(
            select(AuditRow).where(AuditRow.action == action).order_by(AuditRow.id)
        ).all()
        session.expunge_all()
        return list(rows)


def interest(node: RunningNode, interest_id: str, state: str, received: int, **kw: str) -> None:
    with Session(node.runtime.engine) as session, session.begin():
        session.add(
            VisitorInterestRow(
                id=interest_id,
                owner=kw.get("owner", "th"),
                listing_id=kw.get("listing_id", "th-offer-1"),
                name=kw.get("name", "Nguyen Van An"),
                email=kw.get("email", "an@example.vn"),
                organization=kw.get("organization", ""),
                message=kw.get("message", "We would like to license this."),
                address_sha256="0" * 64,
                state=state,
                received=received,
            )
        )
