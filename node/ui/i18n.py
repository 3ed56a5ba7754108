"""The pages' languages: gettext catalogs (Babel ``.po`` files, read at start-up, no
compile step) and the visitor's choice: ``?lang=``, then the ``cattc_lang`` cookie, then
the browser's Accept-Language, then English."""

from __future__ import annotations

import functools
import io
from gettext import NullTranslations
from pathlib import Path

from aiohttp import web
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALES = Path(__file__).parent / "locales"
LANGUAGES: dict[str, str] = {
    "en": "English",
    "zh": "中文（简体）",
    "vi": "Tiếng Việt",
    "th": "ภาษาไทย",
}
"""Each language the pages speak, named in itself (for the picker)."""
DEFAULT = "en"
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
"""The marker functions Babel extracts messages from (templates and Python)."""
COOKIE = "cattc_lang"


@functools.cache
def translations(lang: str) -> NullTranslations:
    """The catalog of ``lang`` (English: the strings as written)."""
    po = LOCALES / lang / "LC_MESSAGES" / "messages.po"
    if lang == DEFAULT or not po.is_file():
        return NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def N_(message: str) -> str:
    """Mark ``message`` for translation where it is written; a template translates it
    (``{{ _(message) }}``) when it is shown."""
    return message


def _from_accept_language(header: str) -> str | None:
    choices: list[tuple[float, str]] = []
    for part in header.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES:
            choices.append((quality, primary))
    return max(choices)[1] if choices else None


def request_language(request: web.Request) -> str:
    """The language to answer ``request`` in."""
    for candidate in (request.query.get("lang"), request.cookies.get(COOKIE)):
        if candidate in LANGUAGES:
            return str(candidate)
    return _from_accept_language(request.headers.get("Accept-Language", "")) or DEFAULT


def localized(texts: dict[str, str], lang: str) -> str:
    """A listing's multilingual text (``{"en": ..., "zh": ...}``) in ``lang`` when it has
    it, else in English, else in whatever language it has."""
    return texts.get(lang) or texts.get(DEFAULT) or next(iter(texts.values()), "")
