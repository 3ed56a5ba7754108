"""``python -m bench.run --only NAME`` replaces that benchmark's section of
docs/benchmarks.md and keeps the others as they were."""

from __future__ import annotations

from bench.run import merge

OLD = """# Benchmarks

| written | 2026-01-01 |

## Import speed

`bench.import_listings`, old figures

## Sync speed

`bench.sync_pull`, old figures
"""

NEW = """# Benchmarks

| written | 2026-02-02 |

## Sync speed

`bench.sync_pull`, new figures

## Views

`bench.views`, new section
"""


def test_only_the_rerun_sections_change() -> None:
    merged = merge(OLD, NEW)
    assert merged == (
        "# Benchmarks\n\n| written | 2026-02-02 |\n\n"
        "## Import speed\n\n`bench.import_listings`, old figures\n\n"
        "## Sync speed\n\n`bench.sync_pull`, new figures\n\n"
        "## Views\n\n`bench.views`, new section\n"
    )
