"""JSON API under /api/v1 (DESIGN §4): Bearer tokens only, JSON errors only."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request, url_for
from flask.typing import ResponseReturnValue

from webapp import documents, jobs
from webapp.auth import user_for_bearer
from webapp.downloads import send_job_file
from webapp.http import api_error
from webapp.models import JobStatus, Origin

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.before_request
def authenticate() -> Any:
    user = user_for_bearer(request.headers.get("Authorization"))
    if user is None:
        response = api_error(
            401, "unauthorized", "A valid 'Authorization: Bearer <token>' header is required."
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="pressroom"'
        return response
    g.api_user = user
    return None


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise jobs.JobError("bad_body")
    return data


@bp.post("/jobs")
def create_job() -> ResponseReturnValue:
    """Start a job: 202 new, 200 an identical live or finished job, 422 invalid params."""
    body = _body()
    if not isinstance(body.get("params"), dict):
        raise jobs.InvalidParams.field("params", "field_object")
    job, created = jobs.submit(g.api_user, body.get("kind"), body["params"], origin=Origin.API)
    status = 202 if created and job.status == JobStatus.QUEUED else 200
    response = jsonify(jobs.job_json(job))
    response.status_code = status
    response.headers["Location"] = url_for("api.get_job", job_id=job.id)
    return response


@bp.get("/jobs")
def list_jobs() -> ResponseReturnValue:
    """The caller's jobs, newest first; `owner=any` (admins) lists everyone's and system jobs."""
    # An empty parameter (`?status=&kind=&limit=`, as an HTML form sends it) means "any".
    status = request.args.get("status") or None
    if status and status not in {s.value for s in JobStatus}:
        raise jobs.InvalidParams.field(
            "status", "field_choice", choices=", ".join(s.value for s in JobStatus)
        )
    kind = request.args.get("kind") or None
    if kind and kind not in documents.names():
        raise jobs.InvalidParams.field(
            "kind", "unknown_kind", kind=repr(kind)[:60], kinds=documents.names()
        )
    try:
        limit = int(request.args.get("limit") or 50)
    except ValueError:
        raise jobs.InvalidParams.field("limit", "field_integer") from None
    if not 1 <= limit <= 500:
        raise jobs.InvalidParams.field("limit", "field_range", low=1, high=500)
    owner = request.args.get("owner") or None
    if owner not in (None, "me", "any"):
        raise jobs.InvalidParams.field("owner", "field_choice", choices="me, any")
    if owner == "any" and not g.api_user.is_admin:
        raise jobs.Forbidden("not_allowed_everyone")
    rows = jobs.list_for(g.api_user, status=status, kind=kind, limit=limit, everyone=owner == "any")
    return jsonify({"jobs": [jobs.job_json(job) for job in rows]})


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> ResponseReturnValue:
    """One job."""
    return jsonify(jobs.job_json(jobs.get_for(g.api_user, job_id)))


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str) -> ResponseReturnValue:
    """Cancel: 200, or 409 when the job already ended."""
    return jsonify(jobs.job_json(jobs.cancel(jobs.get_for(g.api_user, job_id, control=True))))


@bp.post("/jobs/<job_id>/retry")
def retry_job(job_id: str) -> ResponseReturnValue:
    """Retry a failed, cancelled or expired job: 202, or 409."""
    job = jobs.retry(jobs.get_for(g.api_user, job_id, control=True), by=g.api_user)
    response = jsonify(jobs.job_json(job))
    response.status_code = 202
    return response


@bp.get("/jobs/<job_id>/file")
def job_file(job_id: str) -> ResponseReturnValue:
    """The file: 409 not ready, 410 expired."""
    return send_job_file(jobs.get_for(g.api_user, job_id))
