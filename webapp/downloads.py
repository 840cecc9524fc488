"""Serving a job's file from its path: ETag = sha256, Range/206/If-Range, Last-Modified."""

from __future__ import annotations

from urllib.parse import quote

from flask import Response, send_file

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
    """A stored file from its path (410 when it is gone from disk)."""
    path = artifacts.root() / artifact.path
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
    response.headers["Content-Disposition"] = content_disposition(name or path.name)
    response.headers["Cache-Control"] = "private, no-cache"
    return response
