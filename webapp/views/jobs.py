"""The job page, its status partial, "My jobs", download, cancel and retry."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Any

from flask import (
    Blueprint,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_login import current_user, login_required

from webapp import jobs
from webapp.downloads import send_job_file
from webapp.extensions import db, login_manager
from webapp.http import is_htmx, see_other
from webapp.jobs import poll, watch
from webapp.models import LIVE_STATUSES

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
def status(job_id: str) -> ResponseReturnValue:
    """The status partial; an unchanged poll is a 304 without rendering. A poll with the
    page's watch token (webapp/jobs/poll.py) is answered without the session or the ORM."""
    watcher = (
        poll.parse(request.args.get(poll.PARAM)) if poll.is_poll(current_app, request) else None
    )
    if watcher is not None:
        return watched_status(job_id, watcher)
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    job = jobs.get_for(current_user, job_id)
    return status_answer(job, current_user.id, str(get_locale()), None)


def watched_status(job_id: str, watcher: poll.Watcher) -> ResponseReturnValue:
    # No user is loaded from the session this request must not read (Flask-Login's template
    # context would, and so would an error page): anonymous until the session is opened.
    g._login_user = login_manager.anonymous_user()
    job: Any = poll.read(job_id, watcher)
    if job is None:  # logged out since, another user's token, or no such job
        return login_manager.unauthorized()
    if job.status not in LIVE_STATUSES:
        # The last answer (polling stops with it) is rendered the full way: the finished
        # file's size, the kind's own text and buttons for this user, the forms' CSRF fields.
        poll.open_real_session()
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        job = jobs.get_for(current_user, job_id)
        return status_answer(job, current_user.id, str(get_locale()), None)
    # The locale is the one the page was rendered in (there is no user to ask).
    g._flask_babel = SimpleNamespace(babel_locale=poll.locale(watcher.locale))
    return status_answer(job, watcher.user_id, watcher.locale, request.args[poll.PARAM])


def status_answer(job: Any, user_id: int, locale: str, watch_token: str | None) -> Any:
    watch.seen(job.id)
    etag = status_etag(job, user_id, locale)
    if request.if_none_match.contains(etag):
        response = make_response("", 304)
    else:
        response = render_status(job, watch_token)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Vary"] = "HX-Request, Cookie"
    return response


def status_etag(job: Any, user_id: int, locale: str) -> str:
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
        locale,
        user_id,
    )
    return hashlib.sha256(repr(state).encode()).hexdigest()[:32]


def render_status(job: Any, watch_token: str | None = None) -> Any:
    """The partial; from a watch-token poll (`watch_token`) its next polls carry the same
    token and its forms no CSRF field (htmx sends the page's token as a header)."""
    return make_response(
        render_template("partials/_job_status.html", job=job, watch_token=watch_token)
    )


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
