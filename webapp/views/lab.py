"""The lab's pages: reception, protocols, reports, work orders; and the protocols' public page
(the reception label's QR code), the one page here without a login."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy.orm import joinedload

from webapp import jobs
from webapp.downloads import send_artifact
from webapp.errors import Conflict
from webapp.extensions import db
from webapp.http import is_htmx, see_other, whole_number
from webapp.jobs import watch
from webapp.lab import service
from webapp.lab.records import local_today
from webapp.models import (
    Origin,
    Protocol,
    ProtocolStatus,
    Report,
    ReportStatus,
    Veterinarian,
    WorkOrder,
)
from webapp.views.jobs import render_status, to_job_page

bp = Blueprint("lab", __name__, url_prefix="/lab")
public = Blueprint("public", __name__)

SAMPLE_FIELDS = ("veterinarian_id", "animal_id", "species", "analysis_type")


def _veterinarians() -> list[Veterinarian]:
    return list(db.session.scalars(sa.select(Veterinarian).order_by(Veterinarian.name)))


def _form_back(key: str, fields: tuple[str, ...], exc: jobs.InvalidParams, to: str) -> Any:
    """Back to the form with the values sent and each field's message next to it."""
    session[key] = {
        "values": {name: request.form.get(name, "") for name in fields},
        "errors": {name: msg.text() for name, msg in exc.fields.items()},
    }
    flash(exc.msg.text() if not exc.fields else _("Check the marked fields."), "error")
    return see_other(to)


def _day_arg() -> date:
    try:
        return date.fromisoformat(request.args.get("day") or "")
    except ValueError:
        return local_today()


@bp.get("", strict_slashes=False)
@login_required
def index() -> ResponseReturnValue:
    return redirect(url_for("lab.reception"))


# -- reception --------------------------------------------------------------------------------


@bp.get("/reception")
@login_required
def reception() -> ResponseReturnValue:
    """Register and receive samples; the day's received protocols and their labels."""
    day = _day_arg()
    waiting = db.session.scalars(
        sa.select(Protocol)
        .options(joinedload(Protocol.veterinarian))
        .where(Protocol.status == ProtocolStatus.REGISTERED)
        .order_by(Protocol.created_at)
        .limit(100)
    ).all()
    received = db.session.scalars(
        sa.select(Protocol)
        .options(joinedload(Protocol.veterinarian))
        .where(Protocol.received_on == day)
        .order_by(Protocol.number)
    ).all()
    form = session.pop("sample_form", None) or {"values": {}, "errors": {}}
    return render_template(
        "lab/reception.html",
        day=day,
        today=local_today(),
        waiting=waiting,
        received=received,
        veterinarians=_veterinarians(),
        form=form,
    )


@bp.post("/reception/samples")
@login_required
def new_sample() -> ResponseReturnValue:
    """Register a sample that arrived and receive it at once (number + label)."""
    raw: dict[str, Any] = {name: request.form.get(name, "") for name in SAMPLE_FIELDS}
    vet = raw["veterinarian_id"]
    raw["veterinarian_id"] = int(vet) if whole_number(vet) else vet
    try:
        protocol, _job = service.register_and_receive(raw, current_user)
    except jobs.InvalidParams as exc:
        return _form_back("sample_form", SAMPLE_FIELDS, exc, url_for("lab.reception"))
    flash(_("Received as %(number)s; its label is being made.", number=protocol.number), "success")
    return see_other(url_for("lab.protocol", protocol_id=protocol.id))


@bp.post("/protocols/<int:protocol_id>/receive")
@login_required
def receive(protocol_id: int) -> ResponseReturnValue:
    service.receive_protocol(protocol_id, current_user)
    return see_other(url_for("lab.protocol", protocol_id=protocol_id))


@bp.post("/reception/day-labels")
@login_required
def day_labels() -> ResponseReturnValue:
    """All labels of one day as one roll."""
    job, _created = jobs.submit(
        current_user, "reception_labels_day", {"date": request.form.get("day", "")}
    )
    return to_job_page(job.id)


@bp.get("/protocols/<int:protocol_id>")
@login_required
def protocol(protocol_id: int) -> ResponseReturnValue:
    protocol = service.get_protocol(protocol_id)
    label_job = None
    if protocol.label_artifact_id is None and protocol.number:
        label_job = service.live_job("reception_label", f"protocol:{protocol.id}")
    report = db.session.scalars(sa.select(Report).where(Report.protocol_id == protocol.id)).first()
    return render_template(
        "lab/protocol.html", protocol=protocol, label_job=label_job, report=report
    )


@bp.get("/protocols/<int:protocol_id>/label")
@login_required
def label(protocol_id: int) -> ResponseReturnValue:
    """The stored reception label at once; while it is still being made, its job's page."""
    protocol = service.get_protocol(protocol_id)
    if protocol.label_artifact is not None:
        return send_artifact(protocol.label_artifact, service.label_file_name(protocol))
    if protocol.number is None:
        raise Conflict("protocol_not_received", id=protocol.id)
    job = service.live_job("reception_label", f"protocol:{protocol.id}")
    if job is None:
        job, _created = jobs.submit(current_user, "reception_label", {"protocol_id": protocol.id})
    return redirect(url_for("jobs.show", job_id=job.id), code=303)


# -- reports ----------------------------------------------------------------------------------


@bp.get("/reports")
@login_required
def reports() -> ResponseReturnValue:
    status = request.args.get("status") or ""
    query = (
        sa.select(Report)
        .options(joinedload(Report.protocol).joinedload(Protocol.veterinarian))
        .order_by(Report.id.desc())
        .limit(200)
    )
    if status in (ReportStatus.DRAFT, ReportStatus.FINAL):
        query = query.where(Report.status == status)
    return render_template(
        "lab/reports.html", reports=db.session.scalars(query).all(), status=status
    )


@bp.get("/reports/<int:report_id>")
@login_required
def report(report_id: int) -> ResponseReturnValue:
    report = service.get_report(report_id)
    job = service.live_job("report_final", f"report:{report.id}") or service.last_job(
        "report_final", f"report:{report.id}"
    )
    return render_template(
        "lab/report.html", report=report, job=job, mail=service.report_mail_state(report)
    )


@bp.post("/reports/<int:report_id>/finalise")
@login_required
def finalise(report_id: int) -> ResponseReturnValue:
    """Answers at once: the PDF, the FINAL mark and the mail happen in the background."""
    job, _created = jobs.submit(current_user, "report_final", {"report_id": report_id})
    if is_htmx():
        return render_status(job)
    return redirect(url_for("lab.report", report_id=report_id), code=303)


@bp.get("/reports/<int:report_id>/pdf")
@login_required
def report_pdf(report_id: int) -> ResponseReturnValue:
    report = service.get_report(report_id)
    if report.artifact is None:
        raise Conflict("file_not_ready")
    return send_artifact(report.artifact, service.report_file_name(report))


# -- work orders ------------------------------------------------------------------------------


@bp.get("/work-orders")
@login_required
def work_orders() -> ResponseReturnValue:
    orders = db.session.scalars(
        sa.select(WorkOrder)
        .options(joinedload(WorkOrder.veterinarian))
        .order_by(WorkOrder.id.desc())
        .limit(200)
    ).all()
    return render_template("lab/work_orders.html", orders=orders)


@bp.get("/work-orders/new")
@login_required
def new_work_order() -> ResponseReturnValue:
    vets = _veterinarians()
    asked = request.args.get("veterinarian_id", "")
    vet_id = int(asked) if whole_number(asked) else (vets[0].id if vets else None)
    protocols = db.session.scalars(
        sa.select(Protocol)
        .where(Protocol.veterinarian_id == vet_id, Protocol.number.is_not(None))
        .order_by(Protocol.received_on.desc(), Protocol.number.desc())
        .limit(100)
    ).all()
    form = session.pop("work_order_form", None) or {"values": {}, "errors": {}}
    return render_template(
        "lab/work_order_new.html",
        veterinarians=vets,
        vet_id=vet_id,
        protocols=protocols,
        form=form,
    )


@bp.post("/work-orders")
@login_required
def create_work_order() -> ResponseReturnValue:
    vet = request.form.get("veterinarian_id", "")
    raw = {
        "veterinarian_id": int(vet) if whole_number(vet) else 0,
        "protocol_ids": [int(i) for i in request.form.getlist("protocol_id") if whole_number(i)],
        "notes": request.form.get("notes", ""),
    }
    try:
        order, _job = service.create_work_order(raw, current_user)
    except jobs.InvalidParams as exc:
        back = url_for("lab.new_work_order", veterinarian_id=raw["veterinarian_id"] or None)
        return _form_back("work_order_form", ("notes",), exc, back)
    flash(_("Work order %(id)s created; its PDF is being made.", id=order.id), "success")
    return see_other(url_for("lab.work_order", order_id=order.id))


@bp.get("/work-orders/<int:order_id>")
@login_required
def work_order(order_id: int) -> ResponseReturnValue:
    order = service.get_work_order(order_id)
    form = session.pop("work_order_edit", None) or {"values": {}, "errors": {}}
    return render_template(
        "lab/work_order.html",
        order=order,
        document=service.ensure_work_order_pdf(order, current_user, Origin.USER),
        form=form,
    )


@bp.get("/work-orders/<int:order_id>/document")
@login_required
def work_order_badge(order_id: int) -> ResponseReturnValue:
    """The PDF's state (badge and link): polled while a new version is being made."""
    order = service.get_work_order(order_id)
    document = service.work_order_document(order)
    if document.live_job is not None:
        watch.seen(document.live_job.id)  # the page is open: no "ready" mail for it
    return render_template("lab/_work_order_document.html", order=order, document=document)


@bp.post("/work-orders/<int:order_id>")
@login_required
def edit_work_order(order_id: int) -> ResponseReturnValue:
    try:
        _order, job = service.update_work_order(
            order_id, {"notes": request.form.get("notes", "")}, current_user
        )
    except jobs.InvalidParams as exc:
        return _form_back(
            "work_order_edit", ("notes",), exc, url_for("lab.work_order", order_id=order_id)
        )
    if job is None:
        flash(_("Nothing changed."), "info")
    else:
        flash(_("Saved; the PDF is being updated."), "success")
    return see_other(url_for("lab.work_order", order_id=order_id))


@bp.get("/work-orders/<int:order_id>/pdf")
@login_required
def work_order_pdf(order_id: int) -> ResponseReturnValue:
    """The newest stored PDF at once (its state in a header); none yet: the job's page."""
    order = service.get_work_order(order_id)
    document = service.ensure_work_order_pdf(order, current_user, Origin.USER)
    if document.artifact is None:
        assert document.live_job is not None
        return redirect(url_for("jobs.show", job_id=document.live_job.id), code=303)
    response = send_artifact(document.artifact, service.work_order_file_name(order))
    response.headers["Pressroom-Document-Status"] = document.header
    return response


# -- the public page of a protocol (its label's QR code) ------------------------------------------


@public.get("/protocols/public/<external_id>/")
def public_protocol(external_id: str) -> ResponseReturnValue:
    """No login: the protocol's number, status and received date — nothing else."""
    found = None
    if 20 <= len(external_id) <= 43:
        found = db.session.execute(
            sa.select(Protocol.number, Protocol.status, Protocol.received_on).where(
                Protocol.external_id == external_id, Protocol.number.is_not(None)
            )
        ).first()
    if found is None:
        abort(404)
    response = make_response(render_template("lab/public_protocol.html", protocol=found))
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
