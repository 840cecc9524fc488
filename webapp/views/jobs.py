"""The job page, its status partial, "My jobs", download, cancel and retry."""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_login import current_user, login_required

from webapp import jobs
from webapp.downloads import send_job_file
from webapp.extensions import db
from webapp.http import is_htmx, see_other
from webapp.jobs import watch

bp = Blueprint("jobs", __name__, url_prefix="/jobs")


def to_job_page(job_id: str) -> Any:
    """After starting a job: 303 to its page, or HX-Redirect for an htmx request."""
    return see_other(url_for("jobs.show", job_id=job_id))


@bp.get("", strict_slashes=False)
@login_required
def index() -> ResponseReturnValue:
    """My jobs, newest first (admins may ask for everyone's)."""
    everyone = current_user.is_admin and request.args.get("all") == "1"
    status = request.args.get("status") or None
    rows = jobs.list_for(current_user, status=status, limit=100, everyone=everyone)
    return render_template("jobs/index.html", jobs=rows, everyone=everyone, status=status)


@bp.get("/<job_id>")
@login_required
def show(job_id: str) -> ResponseReturnValue:
    """The job's page: one status partial that polls while the job is live."""
    job = jobs.get_for(current_user, job_id)
    watch.seen(job.id)
    return render_template("jobs/show.html", job=job)


@bp.get("/<job_id>/status")
@login_required
def status(job_id: str) -> ResponseReturnValue:
    """The status partial; an unchanged poll is a 304 without rendering."""
    job = jobs.get_for(current_user, job_id)
    watch.seen(job.id)
    etag = status_etag(job)
    response = (
        make_response("", 304) if request.if_none_match.contains(etag) else render_status(job)
    )
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Vary"] = "HX-Request, Cookie"
    return response


def status_etag(job: Any) -> str:
    """A digest of what the partial shows. Not of its bytes: the CSRF token in its forms is
    re-signed every second, so a body hash would never repeat between two polls."""
    state = (
        job.id,
        job.status,
        job.progress_done,
        job.progress_total,
        job.step_code,
        job.step_params,
        job.attempts,
        job.max_attempts,
        job.error_code,
        job.error_params,
        job.file_name,
        job.artifact_id,
        jobs.eta_seconds(job),
        str(get_locale()),
        current_user.id,
    )
    return hashlib.sha256(repr(state).encode()).hexdigest()[:32]


def render_status(job: Any) -> Any:
    return make_response(render_template("partials/_job_status.html", job=job))


@bp.get("/<job_id>/download")
@login_required
def download(job_id: str) -> ResponseReturnValue:
    """The finished file (owner or admin)."""
    return send_job_file(jobs.get_for(current_user, job_id))


@bp.post("/<job_id>/cancel")
@login_required
def cancel(job_id: str) -> ResponseReturnValue:
    """Cancel a queued or running job."""
    job = jobs.get_for(current_user, job_id, control=True)
    try:
        jobs.cancel(job)
    except jobs.Conflict:
        db.session.refresh(job)  # it finished meanwhile: show what it is now
    return _answer(job)


@bp.post("/<job_id>/retry")
@login_required
def retry(job_id: str) -> ResponseReturnValue:
    """Run a failed, cancelled or expired job again ("regenerate")."""
    job = jobs.retry(jobs.get_for(current_user, job_id, control=True), by=current_user)
    if job.id != job_id:
        return to_job_page(job.id)
    return _answer(job)


def _answer(job: Any) -> Any:
    if is_htmx():
        return render_status(job)
    return redirect(url_for("jobs.show", job_id=job.id), code=303)
