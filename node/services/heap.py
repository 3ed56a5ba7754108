"""The C library's heap: freed memory given back to the system.

glibc keeps the chunks a process frees for its next allocations; after a burst of
allocations (a first sync's pages, a re-match pass) the process stays at the burst's size
though most of it is free. ``malloc_trim`` gives the free pages back. Both functions are
no-ops where the C library has none of this (musl, macOS).
"""

from __future__ import annotations

import ctypes
from typing import Any


def libc(name: str) -> Any:
    """The C library's function ``name``, or None where it has none (musl, macOS)."""
    try:
        return getattr(ctypes.CDLL(None), name, None)
    except OSError:
        return None


def trim_heap() -> bool:
    """glibc's ``malloc_trim(0)``: free pages of every arena back to the system. A ctypes
    call releases the GIL, so a thread may run it beside the event loop. False where the
    C library has no ``malloc_trim``."""
    trim = libc("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True
