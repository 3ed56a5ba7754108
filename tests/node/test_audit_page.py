"""The console's audit log page: newest first, filters by actor, action and UTC days
(both ends included), pages of 50, and a bad date or page shown in place (400)."""

from __future__ import annotations

import re
from datetime import datetime

from node.console.audit_page import PAGE_SIZE
from node.ui.accounts import create_user
from node.ui.audit import append
from tests.federation.network import NodeFactory
from tests.security.console_client import PASSWORD, Console

DAY = 86_400_000
_ROW = re.compile(
    r"<tr>\s*<td><time[^>]*>[^<]*</time></td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>"
)


def ms(day: str, hour: int = 12) -> int:
    return int(datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00").timestamp() * 1000)


def rows(html: str) -> list[tuple[str, str, str]]:
    return [(a, b, c) for a, b, c in _ROW.findall(html)]


async def test_filters_and_pages(node_factory: NodeFactory) -> None:
    node = await node_factory("th")
    rt = node.runtime
    create_user(rt.engine, "vera", PASSWORD, "viewer", now_ms=ms("2026-01-01"))
    for i in range(PAGE_SIZE + 5):  # every 6 hours from 2026-03-01 12:00
        append(
            rt.engine,
            at=ms("2026-03-01") + i * DAY // 4,
            actor="ann",
            action="listing.update",
            target=f"l{i:03d}",
        )
    append(
        rt.engine,
        at=ms("2026-03-02", 0),
        actor="bob",
        action="policy.apply",
        target="policy version 2",
    )
    append(
        rt.engine, at=ms("2026-03-03", 23), actor="bob", action="listing.withdraw", target="l000"
    )
    async with Console(node) as client:
        assert (await client.login("vera")).status == 303  # a viewer may read it
        first = await client.get("/console/audit")
        assert first.status == 200
        shown = rows(first.text)
        assert len(shown) == PAGE_SIZE and shown[0] == (
            "ann",
            "listing.update",
            f"l{PAGE_SIZE + 4:03d}",
        )
        assert f"{PAGE_SIZE + 8} entries" in first.text and "Page 1 of 2" in first.text
        second = await client.get("/console/audit?page=2")
        assert len(rows(second.text)) == 8 and rows(second.text)[-1][0] == "setup"
        both = {r for r in rows(first.text) + rows(second.text)}
        assert len(both) == PAGE_SIZE + 8

        bob = rows((await client.get("/console/audit?actor=bob")).text)
        assert bob == [
            ("bob", "listing.withdraw", "l000"),
            ("bob", "policy.apply", "policy version 2"),
        ]
        withdrawn = rows((await client.get("/console/audit?action=listing.withdraw")).text)
        assert withdrawn == [("bob", "listing.withdraw", "l000")]
        # 2026-03-02 to 2026-03-03 includes the whole of both days, and nothing else.
        days = rows(
            (await client.get("/console/audit?since=2026-03-02&until=2026-03-03&actor=bob")).text
        )
        assert len(days) == 2
        one_day = rows((await client.get("/console/audit?since=2026-03-02&until=2026-03-02")).text)
        assert ("bob", "policy.apply", "policy version 2") in one_day
        assert all(
            "l002" <= target <= "l005"
            for _, action, target in one_day
            if action == "listing.update"
        )
        assert len([r for r in one_day if r[1] == "listing.update"]) == 4

        for query, words in (
            ("since=yesterday", "Enter a date as YYYY-MM-DD."),
            ("until=2026-02-30", "Enter a date as YYYY-MM-DD."),
            ("page=0", "There is no such page."),
            ("page=x", "There is no such page."),
            ("page=99", "There is no such page."),
        ):
            answer = await client.get(f"/console/audit?{query}")
            assert answer.status == 400 and words in answer.text, query
