"""What a request carries for the pages: its signed-in user, session and parsed form."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from node.ui.accounts import StaffUser
from node.ui.sessions import WebSession

STAFF_USER: web.RequestKey[StaffUser | None] = web.RequestKey("staff_user")
STAFF_SESSION: web.RequestKey[WebSession | None] = web.RequestKey("staff_session")
FORM: web.RequestKey[MultiDictProxy[Any]] = web.RequestKey("form")
"""The form ``require_role`` read to check its CSRF token; handlers read it from here."""
