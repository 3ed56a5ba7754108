"""Which paths are pages for people (node/ui) rather than the API programs use."""

from __future__ import annotations

PAGE_PREFIXES = ("/console", "/ui/", "/market/")


def is_page(path: str) -> bool:
    """Whether ``path`` is a page for people: the marketplace's ``/``, the consoles, the
    pages' static files and the marketplace's pages."""
    return path == "/" or path.startswith(PAGE_PREFIXES)
