"""Rendering a page: one Jinja environment (autoescaped: listing text is always shown as
text, and without the Unicode controls that would reorder the text around it), the
request's language, its signed-in user and the form token in every page."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import babel
import jinja2
from aiohttp import web
from markupsafe import Markup

from node.ui.i18n import LANGUAGES, localized, request_language, translations
from node.ui.keys import STAFF_SESSION, STAFF_USER

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
"""Like the dashboard's policy, but forms may post back to the node itself."""


# Bidirectional embedding, override and isolate controls (U+202A-U+202E, U+2066-U+2069):
# a title carrying them could show its text, and what follows it, in another order
# (a listing dressed as another's). None of the federation's languages needs them.
BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def without_bidi_controls(value: object) -> object:
    """What a page shows of ``value``: a string without ``BIDI_CONTROLS`` (Jinja's
    ``finalize``, so every expression a template prints), anything else as it is."""
    if isinstance(value, Markup):
        return Markup(str(value).translate(BIDI_CONTROLS))
    if isinstance(value, str):
        return value.translate(BIDI_CONTROLS)
    return value


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        finalize=without_bidi_controls,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["languages"] = LANGUAGES
    env.filters["localized"] = localized
    env.filters["country_name"] = country_name
    return env


@functools.cache
def _territories(lang: str) -> dict[str, str]:
    try:
        return dict(babel.Locale.parse(lang).territories)
    except (ValueError, babel.UnknownLocaleError):
        return {}


def country_name(code: object, lang: str) -> object:
    """A two-letter country code as the country's name in ``lang`` (Babel's CLDR data,
    so no catalog entry is needed); anything else as it is."""
    if not isinstance(code, str) or len(code) != 2:
        return code
    return _territories(lang).get(code.upper(), code)


def page_context(request: web.Request) -> dict[str, Any]:
    """What every page may use: ``_``/``ngettext`` in the request's language, ``lang``,
    ``path`` (for the language picker), ``user`` and ``csrf_token`` (None when signed out)."""
    lang = request_language(request)
    catalog = translations(lang)
    session = request.get(STAFF_SESSION)
    return {
        "_": catalog.gettext,
        "ngettext": catalog.ngettext,
        "lang": lang,
        "path": request.path_qs,
        "user": request.get(STAFF_USER),
        "csrf_token": session.csrf if session is not None else None,
    }


def render(
    request: web.Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> web.Response:
    """``template`` rendered as an HTML answer in the request's language."""
    html = environment().get_template(template).render({**page_context(request), **(context or {})})
    response = web.Response(text=html, status=status, content_type="text/html")
    response.headers["Content-Security-Policy"] = CONSOLE_CSP
    response.headers["Cache-Control"] = "no-store"
    return response


def see_other(target: str) -> web.Response:
    """A 303 to the local path ``target`` (after a form), on which cookies may be set."""
    return web.Response(status=303, headers={"Location": target})
