"""JSON API under /api/v1 (DESIGN §4): Bearer tokens only, JSON errors only."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for
from flask.typing import ResponseReturnValue

from webapp import auth, documents, jobs
from webapp.auth import bearer_refusal, hash_token, user_for_bearer
from webapp.downloads import send_artifact, send_job_file
from webapp.http import api_error
from webapp.jobs import poll, watch
from webapp.lab import service
from webapp.lab.labels import public_url
from webapp.messages import Msg
from webapp.models import Job, JobStatus, Origin, Protocol, WorkOrder

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.before_request
def authenticate() -> Any:
    if request.endpoint == "api.get_job" and request.method == "GET":
        fast = job_from_one_select(request.view_args or {})
        if fast is not None:
            return fast
    user = user_for_bearer(request.headers.get("Authorization"))
    if user is None:
        return bearer_refusal("A valid 'Authorization: Bearer <token>' header is required.")
    g.api_user = user
    return None


def _body(code: str = "bad_body") -> dict[str, Any]:
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser goes: not a body we take
        data = None
    if not isinstance(data, dict):
        raise jobs.JobError(code)
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


def job_from_one_select(view_args: dict[str, Any]) -> Response | None:
    """GET of one job by its owner's token, answered from one indexed SELECT (the status path
    every script polls: webapp/jobs/poll.py); None: the long way (errors, admins, shared
    documents, a bulk job whose counts need more reads)."""
    header = request.headers.get("Authorization") or ""
    if not header.startswith("Bearer "):
        return None
    found = poll.read_for_token(str(view_args.get("job_id")), hash_token(header[7:].strip()))
    kind = documents.get(found.job.kind) if found is not None else None
    if found is None or kind is None or kind.fans_out:
        return None
    auth.note_read_use(found.token_id)
    watch.seen(found.job.id)
    return jsonify(jobs.job_json(found.job))  # type: ignore[arg-type]


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> ResponseReturnValue:
    """One job (its owner's GET is answered by `job_from_one_select` before this)."""
    job = jobs.get_for(g.api_user, job_id)
    watch.seen(job.id)
    return jsonify(jobs.job_json(job))


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


# -- the lab (DESIGN §4a) -------------------------------------------------------------------------


def _protocol_json(protocol: Protocol) -> dict[str, Any]:
    return {
        "id": protocol.id,
        "number": protocol.number,
        "status": protocol.status,
        "received_on": protocol.received_on.isoformat() if protocol.received_on else None,
        "animal_id": protocol.animal_id,
        "species": protocol.species,
        "analysis_type": protocol.analysis_type,
        "veterinarian_id": protocol.veterinarian_id,
        "public_url": public_url(current_app.config["SITE_URL"], protocol.external_id),
    }


def _work_order_json(order: WorkOrder, job: Job | None = None) -> dict[str, Any]:
    document = service.work_order_document(order)
    return {
        "id": order.id,
        "version": order.version,
        "veterinarian_id": order.veterinarian_id,
        "notes": order.notes,
        "items": [
            {
                "protocol_id": item.protocol_id,
                "service": item.service,
                "quantity": item.quantity,
                "price_cents": item.price_cents,
            }
            for item in order.items
        ],
        "pdf": {
            "status": document.status,
            "version": order.pdf_version,
            "sha256": document.artifact.sha256 if document.artifact else None,
            "url": f"{current_app.config['SITE_URL']}/api/v1/work-orders/{order.id}/pdf",
        },
        "job": jobs.job_json(job) if job is not None else None,
    }


@bp.post("/protocols/<int:protocol_id>/receive")
def receive_protocol(protocol_id: int) -> ResponseReturnValue:
    """Number the protocol and queue its label: 202; 404 unknown; 409 received already."""
    job = service.receive_protocol(protocol_id, g.api_user, Origin.API)
    protocol = service.get_protocol(protocol_id)
    response = jsonify({"protocol": _protocol_json(protocol), "job": jobs.job_json(job)})
    response.status_code = 202
    return response


@bp.post("/work-orders")
def create_work_order() -> ResponseReturnValue:
    """A new work order; its PDF is queued with it: 201."""
    order, job = service.create_work_order(_body("bad_object"), g.api_user, Origin.API)
    response = jsonify(_work_order_json(order, job))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_work_order", order_id=order.id)
    return response


@bp.get("/work-orders/<int:order_id>")
def get_work_order(order_id: int) -> ResponseReturnValue:
    return jsonify(_work_order_json(service.get_work_order(order_id)))


@bp.patch("/work-orders/<int:order_id>")
def patch_work_order(order_id: int) -> ResponseReturnValue:
    """Change fields (`notes`, `protocol_ids`): the version goes up and the PDF is queued, in
    one transaction; 200 with the new version (and the job making its PDF)."""
    order, job = service.update_work_order(order_id, _body("bad_object"), g.api_user, Origin.API)
    return jsonify(_work_order_json(order, job))


@bp.get("/work-orders/<int:order_id>/pdf")
def work_order_pdf(order_id: int) -> ResponseReturnValue:
    """The newest stored PDF at once with `Pressroom-Document-Status`; 202 + the job while
    there is none yet."""
    order = service.get_work_order(order_id)
    document = service.ensure_work_order_pdf(order, g.api_user, Origin.API)
    if document.status == "failed" and document.live_job is not None:
        failed = document.live_job
        response = api_error(
            409,
            "conflict",
            Msg("work_order_failed", {"id": order.id, "job": failed.id}),
            job=jobs.job_json(failed),
        )
        return response
    if document.artifact is None:
        assert document.live_job is not None
        watch.seen(document.live_job.id)  # a script is waiting for it
        response = jsonify(jobs.job_json(document.live_job))
        response.status_code = 202
        response.headers["Retry-After"] = "1"
        response.headers["Pressroom-Document-Status"] = "updating"
        return response
    response = send_artifact(document.artifact, service.work_order_file_name(order))
    response.headers["Pressroom-Document-Status"] = document.header
    return response
