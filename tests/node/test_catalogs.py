"""The pages speak English, Chinese, Vietnamese and Thai: every message marked in the code
and templates has a translation in each catalog, with the same placeholders."""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po

from node.ui.catalogs import extract, po_path
from node.ui.i18n import DEFAULT, LANGUAGES, translations

OTHERS = [lang for lang in LANGUAGES if lang != DEFAULT]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w*\}")


@pytest.fixture(scope="module")
def extracted() -> set[str]:
    return {str(m.id) for m in extract() if m.id}


@pytest.mark.parametrize("lang", OTHERS)
def test_every_message_is_translated(lang: str, extracted: set[str]) -> None:
    with po_path(lang).open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    translated = {str(m.id): m.string for m in catalog if m.id and not m.fuzzy}
    missing = sorted(m for m in extracted if not translated.get(m))
    assert not missing, f"{len(missing)} untranslated in {lang} (run make messages): {missing[:10]}"
    for msgid, text in translated.items():
        if isinstance(text, str):
            assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(text)), (
                f"{lang}: placeholders differ in {msgid!r} -> {text!r}"
            )


@pytest.mark.parametrize("lang", OTHERS)
def test_catalog_holds_no_message_the_pages_no_longer_use(lang: str, extracted: set[str]) -> None:
    with po_path(lang).open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    stale = sorted(str(m.id) for m in catalog if m.id and str(m.id) not in extracted)
    assert not stale, f"{lang}: run make messages; no longer used: {stale[:10]}"


def test_a_catalog_is_used() -> None:
    assert translations("zh").gettext("Sign in") != "Sign in"
    assert translations("en").gettext("Sign in") == "Sign in"
