"""``python -m bench.run --only NAME`` replaces that benchmark's section of
docs/benchmarks.md and keeps the others as they were."""

from __future__ import annotations

from bench.run import merge, result_from_row

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


def test_a_row_with_a_baseline_of_the_same_run_reports_the_ratio_to_it() -> None:
    row = {"name": "engine A against engine B", "value": 18.0, "unit": "/s", "baseline": 9.0}
    result = result_from_row(row)
    assert result.baseline == 9.0 and result.ratio == 2.0
    # a row with a goal keeps the ratio to its goal, as before
    goal = result_from_row({"name": "x", "value": 5.0, "goal": "< 10 min", "baseline": 2.0})
    assert goal.ratio == 0.5 and goal.baseline is None
