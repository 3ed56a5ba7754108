"""The console's import jobs: an uploaded file's preview, its run in the background with
counters the progress page reads, and the registry that keeps a node's recent jobs (in
memory: a job is a visit's work, its file in the data directory is removed when the job
ends, is dropped, or the node stops)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import Connection

from node.console.listing_query import table_row
from node.runtime import NodeRuntime
from node.services.bulk_import import ImportRun
from node.services.errors import InvalidListing
from node.services.importer import FileEncodingError, RecordError, read_records
from node.services.listings import MAX_PROBLEMS_KEPT, ImportProblem, ImportReport, StoredListing
from node.services.validation import validate_record
from node.ui.audit import record_on
from protocol.listing import listing_to_wire

logger = logging.getLogger(__name__)
PREVIEW_ROWS = 20
MAX_JOBS = 20
IMPORT_BATCH = 500
UPLOAD_DIR = "console-imports"


@dataclass
class Preview:
    rows: list[dict[str, Any]] = field(default_factory=list)
    good: int = 0
    bad: int = 0
    problems: list[ImportProblem] = field(default_factory=list)


@dataclass
class ImportJob:
    id: str
    path: Path
    filename: str
    owner: str
    encoding: str
    total: int
    preview: Preview
    state: str = "preview"  # then "running", "done" or "failed"
    processed: int = 0
    records: int = 0
    bad: int = 0
    report: ImportReport | None = None
    error: str = ""

    @property
    def good(self) -> int:
        if self.report is not None:
            return self.report.created + self.report.updated + self.report.unchanged
        return max(self.records - self.bad, 0)

    @property
    def percent(self) -> int:
        return min(100, self.processed * 100 // max(self.total, 1))

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "processed": self.processed,
            "total": self.total,
            "percent": self.percent,
            "good": self.good,
            "bad": self.bad,
            "done": self.state in ("done", "failed"),
        }


def _table_row(wire: dict[str, Any]) -> dict[str, Any]:
    return {**table_row(StoredListing(wire, False)), "link": False}


def build_preview(rt: NodeRuntime, path: Path, encoding: str) -> Preview:
    """Validate every record of the file, storing none."""
    preview = Preview()
    seen: dict[str, int] = {}

    def problem(line: int, listing_id: Any, reason: str) -> None:
        preview.bad += 1
        if len(preview.problems) < MAX_PROBLEMS_KEPT:
            shown = listing_id[:100] if isinstance(listing_id, str) else None
            preview.problems.append(ImportProblem(line, shown, reason))

    for line, record in read_records(path, encoding):
        if isinstance(record, Exception):
            problem(line, None, str(record))
            continue
        try:
            listing = validate_record(record)
            rt.listings._check_owner(listing)
        except InvalidListing as exc:
            problem(line, record.get("id"), exc.message)
            continue
        if listing.id in seen:
            problem(line, listing.id, f"duplicate of line {seen[listing.id]}")
            continue
        seen[listing.id] = line
        preview.good += 1
        if len(preview.rows) < PREVIEW_ROWS:
            preview.rows.append(_table_row(listing_to_wire(listing)))
    return preview


def run_import(rt: NodeRuntime, job: ImportJob) -> None:
    """Import the job's file (on a database thread), updating its counters as it goes."""
    try:
        with ImportRun(rt.listings, strict=False, batch=IMPORT_BATCH) as run:
            for line, record in read_records(job.path, job.encoding):
                run.add(line, record)
                job.records += 1
                job.processed = line
                job.bad = run.report.rejected
            report = run.finish(also=functools.partial(_audit, rt, job))
        job.report = report
        job.bad = report.rejected
        job.processed = job.total
        job.state = "done"
    except (RecordError, FileEncodingError, UnicodeDecodeError) as exc:
        job.error = str(exc)
        job.state = "failed"
    except Exception:
        logger.exception("console import of %s failed", job.filename)
        job.error = "internal error; see the node's log"
        job.state = "failed"
    finally:
        job.path.unlink(missing_ok=True)


def _audit(rt: NodeRuntime, job: ImportJob, connection: Connection, report: ImportReport) -> None:
    """The import in the audit log, in its last transaction (``ImportRun.finish``)."""
    detail = (
        f"{job.filename}: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.rejected} rejected"
    )
    record_on(
        connection,
        at=rt.clock(),
        actor=job.owner,
        action="listing.import",
        target="listings",
        detail=detail,
    )


class ImportJobs:
    """A node's recent import jobs and the tasks running them."""

    def __init__(self) -> None:
        self.jobs: dict[str, ImportJob] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.upload_dir: Path | None = None

    def directory(self, rt: NodeRuntime) -> Path:
        self.upload_dir = rt.data_dir / UPLOAD_DIR
        return self.upload_dir

    def add(self, job: ImportJob) -> ImportJob:
        self.jobs[job.id] = job
        for old in list(self.jobs.values()):
            if len(self.jobs) <= MAX_JOBS:
                break
            if old.state != "running":
                del self.jobs[old.id]
                old.path.unlink(missing_ok=True)
        return job

    def get(self, job_id: str) -> ImportJob | None:
        return self.jobs.get(job_id)

    def start(self, job: ImportJob, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def on_shutdown(self, _app: web.Application) -> None:
        """Let running imports finish (each batch is its own transaction)."""
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def on_cleanup(self, _app: web.Application) -> None:
        for job in self.jobs.values():
            job.path.unlink(missing_ok=True)
        self.jobs.clear()
