"""``make bench``: run every benchmark module and write docs/benchmarks.md.

A benchmark is any module in ``bench/`` (other than this one and ``common``) with a
``run()`` function returning ``list[BenchResult]`` (bench.common), each figure the median
of at least three runs; an optional module string ``REPORT_NOTE`` is printed under its
heading. Other shapes are read defensively: a list of ``{name, value, unit, goal, notes}``
rows (bench.match_speed), or a dict of figures (bench.views) whose ``*_per_s`` rates become
results, with the goal its docstring states. A module that fails to import or run is
reported as failed, the others still run, and the exit status is 1. The report records the
machine, the date and the load, so that figures are never compared across machines
without saying so.

Usage: ``python -m bench.run [--only NAME ...] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib
import logging
import os
import pkgutil
import platform
import re
import shlex
import sqlite3
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy

import bench
from bench.common import PROJECT_ROOT, BenchResult

logger = logging.getLogger("bench")

DEFAULT_OUT = PROJECT_ROOT / "docs" / "benchmarks.md"
NOT_BENCHMARKS = frozenset({"run", "common"})
ON_DEMAND = frozenset({"scale"})
"""Benchmarks that take an hour or more (50 member processes): run only when named in
``--only``, never by a plain ``make bench``."""
_GOAL_IN_DOC = re.compile(r"goal is ((?:>=|<=|<|>) ?[\d,_]+(?:\.\d+)?)")
_GOAL = re.compile(r"\s*(>=|<=|<|>)\s*([\d,_]+(?:\.\d+)?)")


@dataclass
class Section:
    """What one benchmark module produced."""

    module: str
    title: str
    note: str = ""
    seconds: float = 0.0
    results: list[BenchResult] = field(default_factory=list)
    error: str = ""
    started: dt.datetime | None = None
    load: str = ""


# -- discovery and running ----------------------------------------------------------------
def discover() -> list[str]:
    """Names of the benchmark modules, e.g. ``['import_listings', 'views']``."""
    return sorted(
        m.name
        for m in pkgutil.iter_modules(bench.__path__)
        if not m.ispkg and not m.name.startswith("_") and m.name not in NOT_BENCHMARKS
    )


def run_module(name: str) -> Section | None:
    """Import ``bench.<name>`` and call its ``run()``; None if it is a helper without one."""
    section = Section(module=f"bench.{name}", title=name, started=dt.datetime.now(dt.UTC))
    load_before = _load()
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.{name}")
        # ``TITLE``: a benchmark whose configuration is chosen by the environment (the
        # scale run's members, listings and database) names each its own section.
        section.title = str(getattr(module, "TITLE", "")) or _title(module) or name
        section.note = str(getattr(module, "REPORT_NOTE", ""))
        run = getattr(module, "run", None)
        if not callable(run):
            logger.info("bench.%s has no run(): not a benchmark", name)
            return None
        section.results = to_results(run(), doc_goal=_goal_from_doc(module))
        if not section.results:
            raise ValueError(f"bench.{name}.run() returned no figures")
    except Exception as exc:  # one broken benchmark must not hide the others
        logger.exception("benchmark %s failed", name)
        section.error = f"{exc.__class__.__name__}: {exc}"
    section.seconds = time.perf_counter() - started
    section.load = f"{load_before} before, {_load()} after"
    return section


def _title(module: ModuleType) -> str:
    doc = (module.__doc__ or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else ""


def _goal_from_doc(module: ModuleType) -> str:
    """A goal stated in the module's docstring as 'the goal is >= N', e.g. '>= 50,000'."""
    found = _GOAL_IN_DOC.search(module.__doc__ or "")
    return found.group(1) if found else ""


# -- reading what run() returned ----------------------------------------------------------
def to_results(value: Any, *, doc_goal: str = "") -> list[BenchResult]:
    """``list[BenchResult]`` as is; the other shapes described in the module doc converted."""
    if isinstance(value, list) and all(isinstance(r, BenchResult) for r in value):
        return list(value)
    if isinstance(value, list) and all(isinstance(r, Mapping) for r in value):
        return [result_from_row(r) for r in value]
    if isinstance(value, Mapping):
        return results_from_mapping(value, doc_goal=doc_goal)
    raise TypeError(f"run() returned {type(value).__name__}, not list[BenchResult]")


def parse_goal(text: str) -> tuple[float | None, float | None]:
    """(at least, at most) from a goal such as '>= 50,000 views/s' or '< 60 s on 2 cores'."""
    found = _GOAL.match(text)
    if not found:
        return None, None
    figure = float(found.group(2).replace(",", "").replace("_", ""))
    return (figure, None) if found.group(1).startswith(">") else (None, figure)


def _with_goal(
    name: str, value: float, unit: str, goal: str, notes: str, runs: tuple[float, ...] = ()
) -> BenchResult:
    least, most = parse_goal(goal)
    figure = least if least is not None else most
    return BenchResult(
        name=name,
        value=value,
        unit=unit,
        goal=goal,
        ratio=value / figure if figure else None,
        goal_min=least,
        goal_max=most,
        notes=notes,
        runs=runs,
    )


def result_from_row(row: Mapping[str, Any]) -> BenchResult:
    """A row ``{name, value, unit, goal, notes}`` (as bench.match_speed returns them); with
    a ``baseline`` measured in the same run, the ratio is ``value / baseline``."""
    value = row["value"]
    if not isinstance(value, int | float):
        raise TypeError(f"figure {row.get('name')!r} is not a number: {value!r}")
    result = _with_goal(
        str(row["name"]),
        float(value),
        str(row.get("unit", "")),
        str(row.get("goal", "")),
        str(row.get("notes", "")),
    )
    baseline = row.get("baseline")
    if isinstance(baseline, int | float) and baseline and not result.goal:
        return dataclasses.replace(result, baseline=float(baseline), ratio=value / baseline)
    return result


def results_from_mapping(data: Mapping[str, Any], *, doc_goal: str = "") -> list[BenchResult]:
    """Each ``*_per_s`` figure (top level or one level down) becomes a result, with the
    goal the module's docstring states ('the goal is >= N').

    Sibling ``seconds`` lists with a top-level ``n_<things>`` count give the individual
    runs; other scalars become notes. A top-level rate that repeats a nested one is dropped.
    """
    count = next(
        (v for k, v in data.items() if k.startswith("n_") and isinstance(v, int | float)), None
    )
    results: list[BenchResult] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            results.extend(_rates(key, value, count, doc_goal))
    nested = {r.value for r in results}
    top = {k: v for k, v in data.items() if not isinstance(v, Mapping)}
    results.extend(r for r in _rates("", top, count, doc_goal) if r.value not in nested)
    return results


def _rates(
    prefix: str, data: Mapping[str, Any], count: float | None, doc_goal: str
) -> list[BenchResult]:
    seconds = data.get("seconds")
    runs: tuple[float, ...] = ()
    if count and isinstance(seconds, list) and all(isinstance(s, int | float) for s in seconds):
        runs = tuple(count / s for s in seconds if s > 0)
    notes = ", ".join(
        f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
        for k, v in data.items()
        if not k.endswith("_per_s") and k != "seconds" and isinstance(v, int | float | str)
    )
    out = []
    for key, value in data.items():
        if key.endswith("_per_s") and isinstance(value, int | float):
            unit = key.removesuffix("_per_s").replace("_", " ") + "/s"
            name = f"{prefix}: {unit}" if prefix else unit
            goal = f"{doc_goal} {unit}" if doc_goal else ""
            out.append(_with_goal(name, float(value), unit, goal, notes, runs))
    return out


# -- the report ---------------------------------------------------------------------------
def machine() -> dict[str, str]:
    cpuinfo = _read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "CPU": model.group(1).strip() if model else platform.processor() or "unknown",
        "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "RAM": f"{int(mem.group(1)) / 1024**2:.1f} GiB" if mem else "unknown",
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "SQLite": sqlite3.sqlite_version,
        "SQLAlchemy": sqlalchemy.__version__,
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _load() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _num(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def _met(result: BenchResult) -> str:
    return {True: "yes", False: "**no**", None: ""}[result.met]


def render(
    sections: Sequence[Section],
    *,
    command: str,
    started: dt.datetime,
    load_before: str,
    load_after: str,
) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by bench/run.py: run `make bench` again rather than editing by hand.",
        "Each figure is the median of the runs listed. The ratio is the figure over its "
        "baseline, measured in the same run on the same machine, or over the goal's figure "
        "where the goal is absolute (no baseline).",
        "",
        "| | |",
        "|---|---|",
        f"| written | {started:%Y-%m-%d %H:%M} UTC (each section says when it ran) |",
        *(f"| {k} | {v} |" for k, v in machine().items()),
        f"| load average (1/5/15 min) | before {load_before}; after {load_after} |",
        f"| command | {command} |",
        "",
    ]
    for s in sections:
        when = f"{s.started:%Y-%m-%d %H:%M} UTC" if s.started else "?"
        lines += [
            f"## {s.title}",
            "",
            f"`{s.module}`, {s.seconds:.0f} s in all, from {when}; load average "
            f"{s.load}. {s.note}".rstrip(),
            "",
        ]
        if s.error:
            lines += [f"**Failed:** {s.error}", ""]
            continue
        lines += [
            "| measure | median | unit | runs | goal | baseline | ratio | met |",
            "|---|---:|---|---:|---|---:|---:|---|",
        ]
        for r in s.results:
            lines.append(
                f"| {r.name} | {_num(r.value)} | {r.unit} | {len(r.runs) or ''} | {r.goal} "
                f"| {_num(r.baseline)} | {_num(r.ratio)} | {_met(r)} |"
            )
        notes = [f"- {r.name}: {r.notes}" for r in s.results if r.notes]
        spreads = [
            f"- {r.name}: runs {', '.join(_num(v) for v in r.runs)}" for r in s.results if r.runs
        ]
        lines += ["", *notes, *spreads, ""]
    return "\n".join(lines).rstrip() + "\n"


def merge(old: str, new: str) -> str:
    """``new``'s header, and its sections in place of ``old``'s of the same title; the
    other sections of ``old`` stay as they were (each says when it ran)."""
    _, *old_sections = old.split("\n## ")
    head, *new_sections = new.split("\n## ")
    fresh = {sec.split("\n", 1)[0]: sec for sec in new_sections}
    kept = [fresh.pop(sec.split("\n", 1)[0], sec) for sec in old_sections]
    return "\n## ".join([head, *kept, *fresh.values()]).rstrip() + "\n"


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks, write the report.")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="e.g. import_listings")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report to write")
    args = parser.parse_args(None if argv is None else list(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    names = discover()
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; there are {', '.join(names)}")
    names = [n for n in names if (n in args.only if args.only else n not in ON_DEMAND)]
    command = "`" + " ".join(["python -m bench.run", *map(shlex.quote, sys.argv[1:])]) + "`"
    if os.environ.get("MAKELEVEL"):
        command = f"`make bench`: {command}"
    started = dt.datetime.now(dt.UTC)
    load_before = _load()
    sections = []
    for name in names:
        logger.info("running bench.%s", name)
        section = run_module(name)
        if section is not None:
            sections.append(section)
            logger.info("bench.%s done in %.0f s", name, section.seconds)
    text = render(
        sections,
        command=command,
        started=started,
        load_before=load_before,
        load_after=_load(),
    )
    if args.only and args.out.exists():  # keep the sections of the benchmarks not re-run
        text = merge(args.out.read_text(encoding="utf-8"), text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    logger.info("wrote %s", args.out)
    return 1 if any(s.error for s in sections) else 0


if __name__ == "__main__":
    raise SystemExit(main())
