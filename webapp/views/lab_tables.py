"""The lab's protocols table (filters in the URL, named like the exports' filter keys) and its
export menu. Its routes belong to the lab blueprint: importing this module adds them."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app, flash, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy.orm import joinedload

from webapp import jobs
from webapp.documents.base import validate
from webapp.documents.lab_exports import ANALYSIS_TYPES, FILTER_KEYS, ProtocolFilter
from webapp.extensions import db
from webapp.http import see_other
from webapp.messages import Msg
from webapp.models import Protocol, Report
from webapp.views.jobs import to_job_page
from webapp.views.lab import bp

# The export menu's choices and the kind each starts.
EXPORT_FORMATS = {"csv": "protocols_csv", "xlsx": "protocols_xlsx", "reports_csv": "reports_csv"}


def _filter_from_args() -> tuple[ProtocolFilter, str | None, Msg | None]:
    """The table's filter, or none and the bad key with its message."""
    try:
        raw = {key: request.args.get(key, "") for key in FILTER_KEYS}
        return validate(ProtocolFilter, raw, name="filter"), None, None
    except jobs.InvalidParams as exc:
        name, msg = next(iter(exc.fields.items()), ("filter", exc.msg))
        return ProtocolFilter(), name.removeprefix("filter."), msg


@bp.get("/protocols")
@login_required
def protocols() -> ResponseReturnValue:
    """The filtered protocols, newest received first; the export menu exports every match."""
    lab_filter, error_key, filter_error = _filter_from_args()
    where = lab_filter.apply(sa.select(Protocol.id))
    if filter_error:  # a filter we cannot apply selects nothing, rather than everything
        where = where.where(sa.false())
    total = db.session.scalar(sa.select(sa.func.count()).select_from(where.subquery())) or 0
    page_size = current_app.config["PAGE_SIZE"]
    pages = max(1, -(-total // page_size))
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), pages)
    query = (
        lab_filter.apply(sa.select(Protocol, Report.status))
        .outerjoin(Report, Report.protocol_id == Protocol.id)
        .options(joinedload(Protocol.veterinarian))
        .order_by(Protocol.received_on.desc().nulls_last(), Protocol.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    rows = db.session.execute(query.where(sa.false()) if filter_error else query).all()
    return render_template(
        "lab/protocols.html",
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        filters=lab_filter.as_dict(),
        filter_error=filter_error,
        error_key=error_key,
        statuses=ProtocolFilter.statuses,
        analysis_types=ANALYSIS_TYPES,
        protocol_count=db.session.scalar(sa.select(sa.func.count(Protocol.id))),
    )


@bp.post("/protocols/export")
@login_required
def export_protocols() -> ResponseReturnValue:
    """Start an export of every protocol the submitted filters select (or of their reports)."""
    kind = EXPORT_FORMATS.get(request.form.get("format", ""))
    # The table's state filter is a protocol's state; a report has states of its own.
    keys = [key for key in FILTER_KEYS if not (kind == "reports_csv" and key == "status")]
    try:
        if kind is None:
            raise jobs.InvalidParams.field("format", "field_choice", choices=list(EXPORT_FORMATS))
        job, _created = jobs.submit(
            current_user, kind, {"filter": {key: request.form.get(key, "") for key in keys}}
        )
    except jobs.InvalidParams as exc:
        flash(exc.msg.text(), "error")
        return see_other(request.referrer or url_for("lab.protocols"))
    return to_job_page(job.id)
