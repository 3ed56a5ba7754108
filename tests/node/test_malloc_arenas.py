"""``cattc serve`` caps glibc's malloc arenas (node.services.heap.limit_arenas): eight
threads allocating at once share two arenas instead of getting one each, the cap reaches
the processes the server starts, and an operator's own MALLOC_ARENA_MAX is kept. Each case
runs in a fresh interpreter (the cap must come before any thread)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.paths import PROJECT_ROOT

SCRIPT = r"""
import ctypes, os, subprocess, sys, tempfile, threading
from node.services.heap import limit_arenas
if sys.argv[1] == "limit":
    assert limit_arenas(2) is (sys.argv[2] == "unset")
libc = ctypes.CDLL(None)
barrier = threading.Barrier(8)
def work():
    blocks = [bytearray(40960) for _ in range(50)]  # past Python's own allocator: malloc
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile() as out:
    fp = ctypes.c_void_p(libc.fopen(out.name.encode(), b"w"))
    libc.malloc_info(0, fp)
    libc.fclose(fp)
    heaps = open(out.name).read().count("<heap nr=")
child = subprocess.run(
    [sys.executable, "-c", "import os; print(os.environ.get('MALLOC_ARENA_MAX'))"],
    capture_output=True, text=True, check=True,
).stdout.strip()
print(heaps, child)
"""


def _run(mode: str, inherited: str | None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    if inherited is not None:
        env["MALLOC_ARENA_MAX"] = inherited
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, "set" if inherited else "unset"],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
        env=env,
    ).stdout.split()
    return int(out[0]), out[1]


def test_threads_share_two_arenas_and_children_inherit_the_cap() -> None:
    heaps, child = _run("none", None)
    assert heaps >= 4 and child == "None"  # without the cap: an arena per busy thread
    heaps, child = _run("limit", None)
    assert heaps <= 2 and child == "2"


def test_an_operators_own_setting_is_kept() -> None:
    heaps, child = _run("limit", "4")
    assert 2 < heaps <= 4 and child == "4"
