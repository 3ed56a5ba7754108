"""The message catalogs: extract every marked message of the pages and update each
language's ``.po`` (``python -m node.ui.catalogs [LANG]``; ``make messages``). New messages
arrive untranslated; ``tests/node/test_catalogs.py`` fails until each language has them."""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from node.ui.i18n import DEFAULT, KEYWORDS, LANGUAGES, LOCALES

ROOT = Path(__file__).resolve().parents[2]
METHODS = [("node/**.py", "python"), ("node/ui/templates/**.html", "jinja2")]
OPTIONS = {"node/ui/templates/**.html": {"trimmed": "true"}}


def extract() -> Catalog:
    """Every message marked in the node's Python and templates."""
    catalog = Catalog(project="cattc-federation", domain="messages")
    found = extract_from_dir(
        ROOT,
        method_map=METHODS,
        options_map=OPTIONS,
        keywords=KEYWORDS,
        comment_tags=("Translators:",),
        directory_filter=lambda path: ".venv" not in path and "/." not in path,
    )
    for filename, lineno, message, comments, context in found:
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def po_path(lang: str) -> Path:
    return LOCALES / lang / "LC_MESSAGES" / "messages.po"


def update(only: str | None = None) -> dict[str, int]:
    """Update each language's catalog (or ``only`` that one) to the extracted messages;
    the count left to translate per language."""
    template = extract()
    missing: dict[str, int] = {}
    for lang in LANGUAGES:
        if lang == DEFAULT or (only is not None and lang != only):
            continue
        path = po_path(lang)
        if path.is_file():
            with path.open("rb") as fh:
                catalog = read_po(fh, locale=lang)
        else:
            catalog = Catalog(locale=lang, domain="messages", project="cattc-federation")
        catalog.update(template, no_fuzzy_matching=True)
        catalog.fuzzy = False  # the header: a fuzzy header would be left out of the .mo
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            write_po(fh, catalog, width=100, omit_header=False, ignore_obsolete=True)
        missing[lang] = sum(1 for m in catalog if m.id and not m.string)
    return missing


def main() -> None:
    only = sys.argv[1] if len(sys.argv) > 1 else None
    if only is not None and (only == DEFAULT or only not in LANGUAGES):
        sys.exit(f"error: no catalog for {only!r}; there are {', '.join(LANGUAGES)}")
    for lang, count in update(only).items():
        print(f"{lang}: {count} messages to translate in {po_path(lang).relative_to(ROOT)}")
    sys.exit(0)


if __name__ == "__main__":
    main()
