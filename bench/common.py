"""What every benchmark module hands back, and the few helpers they share.

A benchmark is a module under ``bench/`` with ``run() -> list[BenchResult]``; ``bench.run``
calls each one and writes docs/benchmarks.md from the results. A result carries its own
goal and, where the goal is relative, the baseline measured in the same run, so the report
never compares figures taken on different machines or days.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TypeVar

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
DEFAULT_REPEATS = 3

T = TypeVar("T")


@dataclass(frozen=True)
class BenchResult:
    """One measured figure: the median of ``runs``, with its goal and baseline.

    ``goal`` says the goal in words. A relative goal sets ``goal_ratio``, the least
    ``ratio`` (``value / baseline``, both measured in the same run) that meets it; an
    absolute one sets ``goal_min`` (at least, for rates) or ``goal_max`` (at most, for
    times).
    """

    name: str
    value: float
    unit: str
    goal: str = ""
    baseline: float | None = None
    ratio: float | None = None
    goal_ratio: float | None = None
    goal_min: float | None = None
    goal_max: float | None = None
    notes: str = ""
    runs: tuple[float, ...] = field(default_factory=tuple)

    @property
    def met(self) -> bool | None:
        """Whether the goal is met; None when the result has no checkable goal."""
        if self.goal_ratio is not None:
            return self.ratio is not None and self.ratio >= self.goal_ratio
        if self.goal_min is not None:
            return self.value >= self.goal_min
        if self.goal_max is not None:
            return self.value <= self.goal_max
        return None


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def result_from_runs(
    name: str,
    runs: Sequence[float],
    unit: str,
    *,
    goal: str = "",
    baseline_runs: Sequence[float] | None = None,
    goal_ratio: float | None = None,
    notes: str = "",
) -> BenchResult:
    """The median of ``runs``; with ``baseline_runs``, the ratio of the two medians."""
    value = median(runs)
    baseline = median(baseline_runs) if baseline_runs else None
    ratio = value / baseline if baseline else None
    return BenchResult(
        name=name,
        value=value,
        unit=unit,
        goal=goal,
        baseline=baseline,
        ratio=ratio,
        goal_ratio=goal_ratio,
        notes=notes,
        runs=tuple(runs),
    )


class Timing(NamedTuple):
    """Wall-clock and CPU seconds of one call. On a shared machine the CPU time moves
    less with other work than the wall time does."""

    wall: float
    cpu: float


def measured(fn: Callable[[], T]) -> tuple[Timing, T]:
    """``fn()``'s wall-clock (perf_counter) and process CPU (process_time) seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu), out
