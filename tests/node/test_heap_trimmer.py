"""A serving process gives its freed heap back to the system every minute
(``node.services.heap.HeapTrimmer``, started by ``run_server``): memory a burst freed
inside the heap (below a block still in use, where glibc never gives it back by itself)
leaves the process's resident size at the next trim, and stopping the trimmer does not
wait for its interval. The heap case runs in a fresh interpreter (its own heap)."""

from __future__ import annotations

import subprocess
import sys
import time

from node.services.heap import HeapTrimmer
from tests.paths import PROJECT_ROOT

SCRIPT = r"""
import time
from node.services.heap import HeapTrimmer

def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024

start = rss_mb()
blocks = [bytearray(b"x" * 4096) for _ in range(25_000)]  # ~100 MB of malloc's heap
kept = bytearray(b"x" * 4096)  # above them: the heap's top cannot shrink past it
del blocks
freed = rss_mb()
time.sleep(0.3)
untrimmed = rss_mb()
trimmer = HeapTrimmer(every_s=0.05)
assert trimmer.start()
deadline = time.monotonic() + 10
while trimmer.trims < 1 and time.monotonic() < deadline:
    time.sleep(0.01)
trimmer.stop()
print(round(start), round(freed), round(untrimmed), round(rss_mb()), trimmer.trims)
"""


def test_the_trimmer_gives_back_what_a_burst_freed_inside_the_heap() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    ).stdout.split()
    start, freed, untrimmed, trimmed, trims = (int(v) for v in out)
    assert freed - start > 80, out  # the freed blocks stay resident...
    assert untrimmed - start > 80, out  # ...however long nobody trims
    assert trims >= 1 and untrimmed - trimmed > 80, out  # the trim gave them back


def test_stopping_the_trimmer_does_not_wait_for_its_interval() -> None:
    trimmer = HeapTrimmer(every_s=3600)
    assert trimmer.start()
    assert not trimmer.start()  # one thread a trimmer
    began = time.monotonic()
    trimmer.stop()
    assert time.monotonic() - began < 1.0
    assert trimmer.trims == 0
