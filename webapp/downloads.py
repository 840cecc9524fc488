"""Serving a job's file: ETag = sha256, Range/206/If-Range, 304, Last-Modified and our
Content-Disposition, from local disk (`send_file` with the path) or streamed from S3 through
the app (a seekable reader whose reads are ranged GetObjects; webapp/storage.py says why not a
presigned redirect). Werkzeug decides every conditional answer the same way for both."""

from __future__ import annotations

import time
from urllib.parse import quote

from flask import Response, request, send_file
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wsgi import FileWrapper

from webapp import storage
from webapp.errors import Conflict, Gone
from webapp.jobs import artifacts
from webapp.models import Artifact, Job, JobStatus


def _ascii_fallback(name: str) -> str:
    safe = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name)
    return safe or "download"


def content_disposition(name: str) -> str:
    return (
        f"attachment; filename=\"{_ascii_fallback(name)}\"; filename*=UTF-8''{quote(name, safe='')}"
    )


def send_job_file(job: Job) -> Response:
    """The finished file; 409 while the job is not done, 410 once retention removed it."""
    if job.status == JobStatus.EXPIRED:
        raise Gone("file_expired")
    if job.status != JobStatus.DONE or job.artifact is None:
        raise Conflict("file_not_ready")
    return send_artifact(job.artifact, job.file_name)


def send_artifact(artifact: Artifact, name: str | None) -> Response:
    """A stored file (410 when it is gone from its store)."""
    store = artifacts.store()
    path = store.local_path(artifact.path)
    if path is None:
        response = _stream(store, artifact)
    else:
        if not path.is_file():
            raise Gone("file_missing")
        response = send_file(
            path,
            mimetype=artifact.media_type,
            conditional=True,
            etag=artifact.sha256,
            last_modified=artifact.created_at,
            max_age=0,
        )
    response.headers["Content-Disposition"] = content_disposition(
        name or artifact.path.rsplit("/", 1)[-1]
    )
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def _stream(store: storage.Storage, artifact: Artifact) -> Response:
    """The object streamed from a remote store with the headers `send_file` gives a path: the
    size from a HEAD, the range (if any) fetched alone (the reader's `stop`)."""
    try:
        reader = store.open(artifact.path)
    except FileNotFoundError:
        raise Gone("file_missing") from None
    response = Response(
        # Werkzeug's own wrapper (not the server's wsgi.file_wrapper): it can seek, so a range
        # is fetched alone instead of read from the start and skipped.
        FileWrapper(reader, 1 << 16),
        mimetype=artifact.media_type,
        direct_passthrough=True,
    )
    size = reader.seek(0, 2)
    reader.seek(0)
    response.content_length = size
    response.last_modified = artifact.created_at
    response.cache_control.no_cache = True
    response.cache_control.max_age = 0
    response.expires = int(time.time())  # type: ignore[assignment]
    response.set_etag(artifact.sha256)
    try:
        response.make_conditional(request.environ, accept_ranges=True, complete_length=size)
    except RequestedRangeNotSatisfiable:
        reader.close()
        raise
    if response.status_code == 206 and isinstance(reader, storage.S3Reader):
        content_range = response.content_range
        if content_range is not None and content_range.stop is not None:
            reader.stop = content_range.stop
    elif response.status_code == 304:
        reader.close()
    return response
