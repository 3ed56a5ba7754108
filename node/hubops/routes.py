"""Routes of the hub operator's console."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    del app  # the pages come with the operator console
