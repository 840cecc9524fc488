"""JSON API under /api/v1 (DESIGN §4): Bearer tokens only, JSON errors only."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request, url_for

from webapp import documents, jobs
from webapp.auth import user_for_bearer
from webapp.downloads import send_job_file
from webapp.errors import api_error
from webapp.models import JobStatus

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.before_request
def authenticate() -> Any:
    user = user_for_bearer(request.headers.get("Authorization"))
    if user is None:
        response = api_error(401, "unauthorized", "A valid 'Authorization: Bearer <token>' header is required.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="pressroom"'
        return response
    g.api_user = user
    return None


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise jobs.JobError("The body must be a JSON object like {\"kind\": …, \"params\": {…}}.")
    return data


@bp.post("/jobs")
def create_job():  # type: ignore[no-untyped-def]
    """Start a job: 202 new, 200 an identical live or finished job, 422 invalid params."""
    body = _body()
    if "params" not in body or not isinstance(body["params"], dict):
        raise jobs.InvalidParams("'params' must be an object.", field="params")
    job, created = jobs.submit(g.api_user, body.get("kind"), body["params"])
    status = 202 if created and job.status == JobStatus.QUEUED else 200
    response = jsonify(jobs.job_json(job))
    response.status_code = status
    response.headers["Location"] = url_for("api.get_job", job_id=job.id)
    return response


@bp.get("/jobs")
def list_jobs():  # type: ignore[no-untyped-def]
    """The caller's jobs, newest first."""
    # An empty parameter (`?status=&kind=&limit=`, as an HTML form sends it) means "any".
    status = request.args.get("status") or None
    if status and status not in {s.value for s in JobStatus}:
        raise jobs.InvalidParams(f"Unknown status {status!r}; use one of: "
                                 f"{', '.join(s.value for s in JobStatus)}.", field="status")
    kind = request.args.get("kind") or None
    if kind and kind not in documents.names():
        raise jobs.InvalidParams(f"Unknown kind {kind!r}; use one of: {', '.join(documents.names())}.",
                                 field="kind")
    try:
        limit = int(request.args.get("limit") or 50)
    except ValueError:
        raise jobs.InvalidParams("'limit' must be a whole number.", field="limit") from None
    if not 1 <= limit <= 500:
        raise jobs.InvalidParams("'limit' must be from 1 to 500.", field="limit")
    rows = jobs.list_for(g.api_user, status=status, kind=kind, limit=limit)
    return jsonify({"jobs": [jobs.job_json(job) for job in rows]})


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):  # type: ignore[no-untyped-def]
    """One job."""
    return jsonify(jobs.job_json(jobs.get_for(g.api_user, job_id)))


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str):  # type: ignore[no-untyped-def]
    """Cancel: 200, or 409 when the job already ended."""
    return jsonify(jobs.job_json(jobs.cancel(jobs.get_for(g.api_user, job_id))))


@bp.post("/jobs/<job_id>/retry")
def retry_job(job_id: str):  # type: ignore[no-untyped-def]
    """Retry a failed, cancelled or expired job: 202, or 409."""
    job = jobs.retry(jobs.get_for(g.api_user, job_id))
    response = jsonify(jobs.job_json(job))
    response.status_code = 202
    return response


@bp.get("/jobs/<job_id>/file")
def job_file(job_id: str):  # type: ignore[no-untyped-def]
    """The file: 409 not ready, 410 expired."""
    return send_job_file(jobs.get_for(g.api_user, job_id))
