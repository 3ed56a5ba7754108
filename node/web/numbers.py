"""Whole numbers read from what a client sent: a query string, a form field, a path.

``str.isdigit`` is true of characters ``int`` refuses ('²', '①') and of strings of any
length (``int`` refuses more than 4,300 digits), so ``int(text) if text.isdigit()`` turned
such a page number into a 500. ``count`` reads only short runs of ASCII digits.
"""

from __future__ import annotations


def count(text: str, max_digits: int) -> int | None:
    """``text`` as a number when it is 1 to ``max_digits`` ASCII digits, else None."""
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None
