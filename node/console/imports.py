"""Importing a file of listings from the console: upload, preview, run, progress.

The upload (CSV or JSON Lines, multipart) is streamed to a temporary file in the node's
data directory, counted against the node's body limit as it arrives. Its CSRF token is
the form's first field, checked before a byte of the file is written; only editors get
that far. The preview validates every record without storing any: the first
``PREVIEW_ROWS`` as the listings table shows them, and each bad line with its reason.
"Import" then runs the streaming importer (``ImportRun``) off the event loop, in the
background; the progress page reads the job's counters (a small JSON status for the
page's script, or a reload link without it) and ends with the report.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, ClientError, web

from node.console.import_jobs import ImportJob, ImportJobs, Preview, build_preview, run_import
from node.console.listings import Missing, or_missing
from node.runtime import NodeRuntime
from node.services.importer import FileEncodingError, RecordError, check_suffix, scan_file
from node.ui.auth import current_user, forbidden, require_role
from node.ui.i18n import N_
from node.ui.keys import STAFF_SESSION, STAFF_USER
from node.ui.sessions import csrf_matches
from node.ui.templating import render, see_other
from node.web.appkeys import RUNTIME

IMPORT_JOBS = web.AppKey("console_import_jobs", ImportJobs)
ENCODINGS = ("", "utf-8", "utf-16", "latin-1", "cp1252")
FIELDS = frozenset({"csrf_token", "encoding", "file"})
MAX_FIELD_BYTES = 200
WRITE_CHUNK = 256 * 1024
logger = logging.getLogger(__name__)


@dataclass
class Upload:
    path: Path | None = None
    filename: str = ""
    encoding: str = ""
    error: str = ""
    status: int = 422
    params: dict[str, Any] = field(default_factory=dict)


def _upload_page(request: web.Request, upload: Upload | None = None) -> web.Response:
    limit = request.app[RUNTIME].config.max_body_bytes
    context = {"encodings": ENCODINGS, "upload": upload, "max_bytes": limit}
    status = upload.status if upload is not None and upload.error else 200
    return render(request, "console/import.html", context, status=status)


@require_role("editor")
async def import_page(request: web.Request) -> web.Response:
    return _upload_page(request)


class _Budget:
    """The body's bytes counted against the node's limit, and each read bounded in time
    (a stalled upload ends rather than holding its file open)."""

    def __init__(self, limit: int, timeout: float) -> None:
        self.limit = limit
        self.timeout = timeout
        self.received = 0

    async def chunk(self, part: BodyPartReader, size: int = 64 * 1024) -> bytes | None:
        """The part's next bytes (b"" at its end), or None past the limit."""
        async with asyncio.timeout(self.timeout):
            data = await part.read_chunk(size)
        self.received += len(data)
        return None if self.received > self.limit else data


async def _text(part: BodyPartReader, budget: _Budget) -> str | None:
    """A short form field (the token, the encoding), or None if it is not short."""
    data = b""
    while chunk := await budget.chunk(part, MAX_FIELD_BYTES + 1):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            return None
    return None if chunk is None else data.decode("utf-8", "replace")


def _too_large(upload: Upload, limit: int) -> Upload:
    upload.error, upload.status = N_("The file is larger than %(limit)s bytes."), 413
    upload.params = {"limit": f"{limit:,}"}
    return upload


async def _receive(request: web.Request, upload: Upload, target_dir: Path, budget: _Budget) -> None:
    """Read the multipart body into ``upload``: the CSRF token first, then the encoding,
    then the file, streamed to a file in ``target_dir``. Any other part is refused."""
    session = request[STAFF_SESSION]
    reader = await request.multipart()
    token_ok = False
    while True:
        async with asyncio.timeout(budget.timeout):
            part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader) or part.name not in FIELDS:
            upload.error = N_("The form was not understood. Reload the page and try again.")
            return
        if part.name == "csrf_token":
            token = await _text(part, budget)
            token_ok = (
                session is not None and token is not None and csrf_matches(session.csrf, token)
            )
        elif not token_ok:
            upload.error, upload.status = "csrf", 403
            return
        elif part.name == "encoding":
            encoding = await _text(part, budget)
            if encoding is None:
                _too_large(upload, budget.limit)
                return
            upload.encoding = encoding.strip()
            if upload.encoding not in ENCODINGS:  # the form's choices, nothing else
                upload.error = N_("The form was not understood. Reload the page and try again.")
                return
        elif upload.path is None:
            upload.filename = Path(part.filename or "").name[:200]
            suffix = Path(upload.filename).suffix.lower()
            try:
                check_suffix(Path(upload.filename))
            except RecordError:
                upload.error = N_("Choose a .csv or .jsonl file.")
                return
            target_dir.mkdir(parents=True, exist_ok=True)
            upload.path = target_dir / f"{secrets.token_hex(12)}{suffix}"
            with upload.path.open("wb") as fh:
                buffered: list[bytes] = []
                size = 0
                while chunk := await budget.chunk(part):
                    buffered.append(chunk)
                    size += len(chunk)
                    if size >= WRITE_CHUNK:
                        await asyncio.to_thread(fh.write, b"".join(buffered))
                        buffered, size = [], 0
                if chunk is None:
                    _too_large(upload, budget.limit)
                    return
                if buffered:
                    await asyncio.to_thread(fh.write, b"".join(buffered))
        else:
            upload.error = N_("Upload one file at a time.")
            return
    if not token_ok:
        upload.error, upload.status = "csrf", 403
    elif upload.path is None or upload.path.stat().st_size == 0:
        upload.error = N_("Choose a file to import.")


async def upload_file(request: web.Request) -> web.StreamResponse:
    """POST of the upload form. Guarded like ``require_role("editor")`` but without
    reading the whole body first: the file is streamed to disk."""
    user = await current_user(request)
    if user is None:
        return forbidden(request, N_("Your session has ended. Please sign in again."))
    if not user.may("editor"):
        return forbidden(request, N_("Your role does not allow this."))
    rt = request.app[RUNTIME]
    jobs = request.app[IMPORT_JOBS]
    if not request.content_type.startswith("multipart/"):
        return forbidden(request, N_("This form has expired. Reload the page and try again."))
    upload = Upload()
    budget = _Budget(rt.config.max_body_bytes, rt.config.body_timeout_seconds)
    try:
        await _receive(request, upload, jobs.directory(rt), budget)
    except (TimeoutError, ConnectionError, ValueError, ClientError) as exc:
        # Cut short, stalled or not multipart at all: nothing is kept.
        logger.info("a console upload was not received whole: %s", exc)
        if upload.path is not None:
            upload.path.unlink(missing_ok=True)
        upload.error = N_("The upload did not arrive whole. Please try again.")
        upload.status = 400
    if upload.error:
        if upload.path is not None:
            upload.path.unlink(missing_ok=True)
        if upload.error == "csrf":
            return forbidden(request, N_("This form has expired. Reload the page and try again."))
        return _upload_page(request, upload)
    assert upload.path is not None
    try:
        scan = await asyncio.to_thread(scan_file, upload.path, upload.encoding or None)
        preview = await rt.run(build_preview, rt, upload.path, scan.encoding)
    except (FileEncodingError, RecordError) as exc:
        upload.path.unlink(missing_ok=True)
        message = str(exc).replace(upload.path.name, upload.filename)
        upload.error, upload.params = N_("The file cannot be read: %(reason)s"), {"reason": message}
        return _upload_page(request, upload)
    except BaseException:  # a bug or a stop: the upload is not left behind on disk
        upload.path.unlink(missing_ok=True)
        raise
    job = jobs.add(
        ImportJob(
            id=secrets.token_urlsafe(12),
            path=upload.path,
            filename=upload.filename,
            owner=user.name,
            encoding=scan.encoding,
            total=scan.lines,
            preview=preview,
        )
    )
    return see_other(f"/console/listings/import/{job.id}")


def _job(request: web.Request) -> ImportJob:
    user = request[STAFF_USER]
    job = request.app[IMPORT_JOBS].get(request.match_info["job_id"])
    if job is None or user is None or job.owner != user.name:
        raise Missing("import")
    return job


@require_role("editor")
@or_missing
async def job_page(request: web.Request) -> web.Response:
    job = _job(request)
    template = (
        "console/import_preview.html" if job.state == "preview" else "console/import_progress.html"
    )
    return render(request, template, {"job": job, **_labels()})


def _labels() -> dict[str, Any]:
    from node.console.listing_fields import CATEGORY_LABELS

    return {"category_labels": CATEGORY_LABELS}


@require_role("editor")
@or_missing
async def start_job(request: web.Request) -> web.Response:
    job = _job(request)
    rt = request.app[RUNTIME]
    if job.state == "preview":
        job.state = "running"
        request.app[IMPORT_JOBS].start(job, _run(rt, job))
    return see_other(f"/console/listings/import/{job.id}")


async def _run(rt: NodeRuntime, job: ImportJob) -> None:
    await rt.run(run_import, rt, job)


@require_role("editor")
@or_missing
async def job_status(request: web.Request) -> web.Response:
    job = _job(request)
    response = web.json_response(job.status())
    response.headers["Cache-Control"] = "no-store"
    return response


def setup(app: web.Application) -> None:
    jobs = ImportJobs()
    app[IMPORT_JOBS] = jobs
    app.on_shutdown.append(jobs.on_shutdown)
    app.on_cleanup.append(jobs.on_cleanup)
    r = app.router
    r.add_get("/console/listings/import", import_page)
    r.add_post("/console/listings/import", upload_file)
    r.add_get("/console/listings/import/{job_id}", job_page)
    r.add_post("/console/listings/import/{job_id}", start_job)
    r.add_get("/console/listings/import/{job_id}/status", job_status)


__all__ = ["Preview", "setup"]
