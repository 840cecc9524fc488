"""Admin pages (DESIGN §4b): monitoring with batch actions and paused queues, the audit log,
the statistics' history, the mails; and `/metrics` for Prometheus (a token, no session)."""

from __future__ import annotations

import hmac
import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    render_template,
    request,
    send_file,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import joinedload, selectinload

from webapp import audit, documents, jobs, metrics, monitor
from webapp.auth import admin_required, user_for_bearer
from webapp.extensions import db
from webapp.http import api_error, see_other, whole_number
from webapp.jobs.queues import QUEUES
from webapp.models import AuditEntry, Job, JobStatus, OutboxItem, ScheduleRun, User

bp = Blueprint("admin", __name__, url_prefix="/admin")
probe = Blueprint("metrics", __name__)
EML = re.compile(r"^[A-Za-z0-9@._\-]+\.eml$")
PAGE = 50
BATCH_LIMIT = 10_000  # jobs one "all matching" action touches


def paused_queues() -> set[str]:
    client = metrics.redis_client()
    if client is None:
        return set()
    try:
        return {m.decode() for m in client.smembers("pressroom:paused")}
    except Exception:
        return set()


# -- the job filters (GET parameters, so a filtered view has a URL) -------------------------------


def _filters(values: Any) -> dict[str, str]:
    return {k: (values.get(k) or "").strip() for k in ("kind", "status", "owner", "since")}


def _matching(filters: dict[str, str]) -> Any:
    query = sa.select(Job).where(Job.parent_id.is_(None))
    if filters["kind"] in documents.names():
        query = query.where(Job.kind == filters["kind"])
    if filters["status"] in {s.value for s in JobStatus}:
        query = query.where(Job.status == filters["status"])
    owner = filters["owner"].lower()
    if owner == "system":
        query = query.where(Job.owner_id.is_(None))
    elif owner:
        query = query.join(User, User.id == Job.owner_id).where(sa.func.lower(User.email) == owner)
    try:
        since = date.fromisoformat(filters["since"]) if filters["since"] else None
    except ValueError:
        since = None
    if since:
        query = query.where(Job.created_at >= datetime.combine(since, time()))
    return query


@bp.get("", strict_slashes=False)
@admin_required
def index() -> ResponseReturnValue:
    filters = _filters(request.args)
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    rows = db.session.scalars(
        _matching(filters)
        .options(selectinload(Job.owner))
        .order_by(Job.created_at.desc(), Job.id)
        .limit(PAGE + 1)
        .offset((page - 1) * PAGE)
    ).all()
    return render_template(
        "admin/index.html",
        filters=filters,
        jobs=rows[:PAGE],
        more=len(rows) > PAGE,
        page=page,
        kinds=documents.names(),
        statuses=[s.value for s in JobStatus],
        **_panel(),
    )


def _panel() -> dict[str, Any]:
    overview = monitor.overview(paused_queues())
    return {
        "o": overview,
        "chart": monitor.chart_svg(overview.hours, current_app.config["TZ"]),
    }


@bp.get("/panel")
@admin_required
def panel() -> ResponseReturnValue:
    """The figures, polled by the page while it is visible."""
    return render_template("admin/_panel.html", **_panel())


@bp.post("/jobs/batch")
@admin_required
def batch() -> ResponseReturnValue:
    """Cancel or retry the ticked jobs, or every job the filters match."""
    action = request.form.get("action")
    filters = _filters(request.form)
    kept: dict[str, Any] = {k: v for k, v in filters.items() if v}
    back = url_for("admin.index", **kept)
    if action not in ("cancel", "retry"):
        flash(_("Choose cancel or retry."), "error")
        return see_other(back)
    if request.form.get("scope") == "matching":
        targets = db.session.scalars(
            _matching(filters).order_by(Job.created_at).limit(BATCH_LIMIT)
        ).all()
        scope: dict[str, Any] = {"matching": {k: v for k, v in filters.items() if v}}
    else:
        ids = [i for i in request.form.getlist("job_id") if isinstance(i, str) and len(i) <= 24]
        targets = db.session.scalars(
            sa.select(Job).where(Job.id.in_(ids), Job.parent_id.is_(None))
        ).all()
        scope = {"job_ids": ids[:200], "count": len(ids)}
    changed = skipped = 0
    for job in targets:
        try:
            if action == "cancel":
                jobs.cancel(job)
            else:
                jobs.retry(job, by=current_user)
            changed += 1
        except jobs.Conflict:
            skipped += 1
    audit.record(
        None, current_user, f"jobs.{action}", scope, {"changed": changed, "skipped": skipped}
    )
    flash(
        _(
            "%(action)s: %(changed)s jobs, %(skipped)s skipped (not in a state for it).",
            action=_("Cancelled") if action == "cancel" else _("Restarted"),
            changed=changed,
            skipped=skipped,
        ),
        "success" if changed else "info",
    )
    return see_other(back)


@bp.post("/queues/<queue>/<any(pause, resume):verb>")
@admin_required
def queue_state(queue: str, verb: str) -> ResponseReturnValue:
    if queue not in QUEUES:
        abort(404)
    client = metrics.redis_client()
    if client is None:
        flash(_("Queues can be paused only with Redis."), "error")
        return see_other(url_for("admin.index"))
    if verb == "pause":
        client.sadd("pressroom:paused", queue)
    else:
        client.srem("pressroom:paused", queue)
    audit.record(None, current_user, f"queue.{verb}", {"queue": queue})
    flash(
        _("Queue %(queue)s paused: its jobs wait until you resume it.", queue=queue)
        if verb == "pause"
        else _("Queue %(queue)s resumed.", queue=queue),
        "success",
    )
    return see_other(url_for("admin.index"))


# -- audit, statistics, mails ---------------------------------------------------------------------


@bp.get("/audit")
@admin_required
def audit_log() -> ResponseReturnValue:
    entries = db.session.scalars(
        sa.select(AuditEntry)
        .options(joinedload(AuditEntry.user))
        .order_by(AuditEntry.at.desc())
        .limit(200)
    ).all()
    return render_template("admin/audit.html", entries=entries)


@bp.get("/stats")
@admin_required
def stats() -> ResponseReturnValue:
    """Every scheduled period and its report; start one by hand."""
    runs = db.session.execute(
        sa.select(ScheduleRun, Job)
        .outerjoin(Job, Job.id == ScheduleRun.job_id)
        .order_by(ScheduleRun.period.desc(), ScheduleRun.schedule)
        .limit(200)
    ).all()
    return render_template(
        "admin/stats.html", runs=runs, schedules=current_app.config.get("SCHEDULES") or ""
    )


@bp.post("/stats")
@admin_required
def run_stats() -> ResponseReturnValue:
    kind = request.form.get("kind")
    if kind not in ("stats_daily", "stats_weekly"):
        abort(400)
    job, _created = jobs.submit(current_user, kind, {"period": request.form.get("period", "")})
    audit.record(None, current_user, "stats.run", {"kind": kind, "period": job.params["period"]})
    from webapp.views.jobs import to_job_page

    return to_job_page(job.id)


def _eml_files() -> list[tuple[str, int, float]]:
    folder = Path(current_app.config["OUTBOX_DIR"])
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if EML.match(path.name) and not path.name.startswith("."):
            stat = path.stat()
            found.append((path.name, stat.st_size, stat.st_mtime))
    return sorted(found, key=lambda f: f[2], reverse=True)[:200]


@bp.get("/mails")
@admin_required
def mails() -> ResponseReturnValue:
    """Every mail in the outbox (pending, sent, given up) and, without SMTP, the files."""
    items = db.session.scalars(
        sa.select(OutboxItem)
        .where(OutboxItem.action == "mail")
        .order_by(OutboxItem.created_at.desc())
        .limit(200)
    ).all()
    return render_template(
        "admin/mails.html",
        items=items,
        files=_eml_files(),
        smtp=bool(current_app.config.get("SMTP_URL")),
    )


@bp.get("/mails/files/<name>")
@admin_required
def mail_file(name: str) -> ResponseReturnValue:
    if not EML.match(name) or name.startswith("."):
        abort(404)
    path = Path(current_app.config["OUTBOX_DIR"]) / name
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype="message/rfc822", as_attachment=True, download_name=name)


# -- /metrics -------------------------------------------------------------------------------------


@probe.get("/metrics")
def prometheus() -> ResponseReturnValue:
    """Prometheus text format, for `METRICS_TOKEN` or an admin's API token (Bearer)."""
    header = request.headers.get("Authorization") or ""
    expected = current_app.config.get("METRICS_TOKEN")
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not (expected and given and hmac.compare_digest(given.encode(), expected.encode())):
        user = user_for_bearer(header)
        if user is None:
            response = api_error(
                401, "unauthorized", "A metrics token or an admin's API token is required."
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="pressroom"'
            return response
        if not user.is_admin:
            return api_error(403, "forbidden", "Only administrators may read the metrics.")
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


# -- bulk work: regeneration, protocol updates, mail ----------------------------------------------


def _protocol_ids(text: str) -> tuple[list[int], list[str]]:
    """Ids ("12") or numbers ("HP 26/0001"), one per line or comma-separated → (ids, unknown)."""
    from webapp.models import Protocol

    entries = [e.strip() for e in re.split(r"[,\n;]+", text or "") if e.strip()]
    ids = [int(e) for e in entries if whole_number(e)]
    numbers = [e for e in entries if not (e.isascii() and e.isdecimal())]
    found = (
        dict(
            db.session.execute(
                sa.select(Protocol.number, Protocol.id).where(Protocol.number.in_(numbers))
            ).all()
        )
        if numbers
        else {}
    )
    unknown = [n for n in numbers if n not in found]
    return ids + [found[n] for n in numbers if n in found], unknown


def _regeneration_preview(values: Any) -> dict[str, Any] | None:
    """How many documents a scope covers and how long they take at the last day's pace."""
    from webapp.documents.regenerate import regenerable, scope_of

    kind_name = values.get("kind")
    if kind_name not in regenerable():
        return None
    scope: Any = values.get("scope") or "stale"
    if scope == "since":
        scope = {"changed_since": values.get("since") or "2000-01-01"}
    try:
        found = documents.get(kind_name).documents(db.session(), scope_of({"scope": scope})) or []  # type: ignore[union-attr]
    except ValueError:
        return None
    overview = monitor.overview(paused_queues())
    pace = next((k.p50_s for k in overview.kinds if k.kind == kind_name), None)
    workers = max(len(overview.workers), 1)
    eta = round(len(found) * pace / workers) if pace is not None else None
    return {"count": len(found), "eta": eta, "workers": len(overview.workers)}


@bp.get("/bulk")
@admin_required
def bulk() -> ResponseReturnValue:
    from webapp.documents.bulk import TEMPLATES
    from webapp.documents.regenerate import regenerable

    recent = db.session.scalars(
        sa.select(Job)
        .where(
            Job.kind.in_(("regenerate", "bulk_protocol_update", "bulk_mail")),
            Job.parent_id.is_(None),
        )
        .order_by(Job.created_at.desc())
        .limit(20)
    ).all()
    return render_template(
        "admin/bulk.html",
        kinds=regenerable(),
        templates=list(TEMPLATES),
        preview=_regeneration_preview(request.args) if request.args.get("kind") else None,
        values=request.args,
        recent=recent,
    )


def _start(kind: str, params: dict[str, Any]) -> Any:
    from webapp.views.jobs import to_job_page

    try:
        job, _created = jobs.submit(current_user, kind, params)
    except jobs.InvalidParams as exc:
        first = next(iter(exc.fields.values()), exc.msg)
        flash(first.text(), "error")
        return see_other(url_for("admin.bulk"))
    return to_job_page(job.id)


@bp.post("/bulk/regenerate")
@admin_required
def start_regeneration() -> ResponseReturnValue:
    scope: Any = request.form.get("scope") or "stale"
    if scope == "since":
        scope = {"changed_since": request.form.get("since") or ""}
    return _start(
        "regenerate",
        {
            "kind": request.form.get("kind", ""),
            "scope": scope,
            "force": bool(request.form.get("force")),
        },
    )


@bp.post("/bulk/protocols")
@admin_required
def start_bulk() -> ResponseReturnValue:
    ids, unknown = _protocol_ids(request.form.get("protocols", ""))
    if unknown:
        flash(_("Unknown protocol numbers: %(numbers)s", numbers=", ".join(unknown[:10])), "error")
        return see_other(url_for("admin.bulk"))
    if request.form.get("action") == "mail":
        return _start(
            "bulk_mail", {"protocol_ids": ids, "template": request.form.get("template", "")}
        )
    changes: dict[str, Any] = {}
    if request.form.get("status"):
        changes["status"] = request.form["status"]
    if request.form.get("assign"):
        changes["assigned_to"] = request.form.get("assigned_to", "").strip() or None
    return _start("bulk_protocol_update", {"protocol_ids": ids, "set": changes})


@bp.post("/jobs/<job_id>/retry-failed")
@admin_required
def retry_failed(job_id: str) -> ResponseReturnValue:
    """Run a bulk job's failed documents again (each a job of its own)."""
    from webapp.views.jobs import to_job_page

    parent = jobs.get_for(current_user, job_id)
    failed = db.session.scalars(
        sa.select(Job).where(Job.batch_id == parent.id, Job.status == JobStatus.FAILED)
    ).all()
    retried = 0
    for child in failed:
        try:
            jobs.retry(child, by=current_user)
            retried += 1
        except jobs.Conflict:
            pass
    audit.record(None, current_user, "jobs.retry_failed", {"job": parent.id}, {"retried": retried})
    flash(_("%(n)s failed documents started again.", n=retried), "success")
    return to_job_page(parent.id)
