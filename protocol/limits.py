"""Size limits every node agrees on, so that no object can block a feed (DESIGN 6, 8).

A feed page carries at most ``MAX_PAGE_ITEMS`` items and at most ``MAX_PAGE_BYTES``
bytes; a reader refuses anything larger. A node never queues an item larger than
``MAX_ITEM_BYTES``, and pages hold at most its configured byte limit (never above
``MAX_PAGE_BYTES``), which always leaves room for one item of the largest size: so
every page carries at least one item and a reader always gets past it.
"""

from __future__ import annotations

MAX_PAGE_ITEMS = 1000
MAX_ITEM_BYTES = 1024 * 1024
MAX_PAGE_BYTES = 16 * 1024 * 1024
# What a page adds around its items: its own fields and signature (a few hundred bytes).
PAGE_ENVELOPE_BYTES = 4096
MIN_PAGE_BYTES = MAX_ITEM_BYTES + PAGE_ENVELOPE_BYTES
