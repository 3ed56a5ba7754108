"""What the sharing pages share: the draft in a form, problems answered as a page, the
text editor's answer with each problem at its rule's line, and audience labels."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from node.console.sharing_grid import rule_lines
from node.ui.i18n import N_
from node.ui.templating import render
from policies.model import NODE_ID_RE, PolicyError
from protocol.countries import COUNTRY_NAMES

TEXT_MAX = 200_000
PageHandler = Callable[[web.Request], Awaitable[web.Response]]


class PageProblem(Exception):
    """A request the sharing pages answer with a message instead of a page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def problem_page(request: web.Request, exc: PageProblem) -> web.Response:
    context = {"message": exc.message}
    return render(request, "console/sharing_problem.html", context, status=exc.status)


def pages(handler: PageHandler) -> PageHandler:
    """Answer a ``PageProblem`` raised by ``handler`` with its message, as a page."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except PageProblem as exc:
            return problem_page(request, exc)

    return wrapped


def read_draft(form: MultiDictProxy[Any]) -> tuple[str, str]:
    text = str(form.get("text", ""))
    base = str(form.get("base", ""))
    if len(text) > TEXT_MAX:
        raise PageProblem(413, N_("The policy text is too long."))
    return text.replace("\r\n", "\n"), base[:64]


def country_label(key: str) -> str:
    """``Thailand`` for ``th`` (national nodes are named by their country code), else ""."""
    return COUNTRY_NAMES.get(key.upper(), "") if NODE_ID_RE.match(key) else ""


def _issues(text: str, exc: PolicyError) -> list[dict[str, Any]]:
    lines = rule_lines(text)
    return [{"line": lines.get(i.rule) if i.rule else None, "message": str(i)} for i in exc.issues]


def text_answer(
    request: web.Request,
    text: str,
    base: str,
    exc: PolicyError | None,
    *,
    checked: bool = False,
    status: int = 200,
) -> web.Response:
    context = {
        "text": text,
        "base": base,
        "issues": _issues(text, exc) if exc is not None else [],
        "valid": checked and exc is None,
    }
    return render(request, "console/sharing_text.html", context, status=status)
