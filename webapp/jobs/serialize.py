"""Job → JSON (DESIGN §4) and the ETA shown in the UI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app, url_for

from webapp.models import Job, JobStatus, utcnow


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def eta_seconds(job: Job, now: datetime | None = None) -> int | None:
    """Seconds left at the rate so far; None until there is a rate to go by."""
    if job.status != JobStatus.RUNNING or not job.started_at or job.progress_done <= 0:
        return None
    elapsed = ((now or utcnow()) - job.started_at).total_seconds()
    if elapsed <= 0:
        return None
    left = max(job.progress_total - job.progress_done, 0)
    return int(round(left * elapsed / job.progress_done))


def items(job: Job) -> dict[str, int] | None:
    """{done, failed, skipped} of a job over many documents (a bulk job's documents, counted
    as they are now; a bulk update's rows as it reported them); None for the others."""
    from webapp import documents

    kind = documents.get(job.kind)
    if kind is not None and kind.fans_out:
        from webapp.extensions import db
        from webapp.jobs.batches import items_of

        return items_of(db.session, job)
    if job.items is None:
        return None
    return {key: int(job.items.get(key, 0)) for key in ("done", "failed", "skipped")}


def file_json(job: Job) -> dict[str, Any] | None:
    if job.status != JobStatus.DONE or job.artifact is None:
        return None
    site = current_app.config["SITE_URL"]
    return {
        "name": job.file_name,
        "size": job.artifact.size,
        "sha256": job.artifact.sha256,
        "url": site + url_for("api.job_file", job_id=job.id),
    }


def job_json(job: Job) -> dict[str, Any]:
    step, error = job.step, job.error
    return {
        "id": job.id,
        "kind": job.kind,
        "params": job.params,
        "status": job.status,
        "origin": job.origin,
        "progress": {
            "done": min(job.progress_done, job.progress_total),
            "total": job.progress_total,
            "unit": job.unit,
            "step": step.code if step else None,
        },
        "items": items(job),
        "eta_seconds": eta_seconds(job),
        "attempts": job.attempts,
        "error": {"code": error.code, "message": error.english()} if error else None,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "file": file_json(job),
    }
