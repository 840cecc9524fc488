"""The potting-lot table, printing its labels, a label preview and the CSV import."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required

from webapp import jobs
from webapp.extensions import db
from webapp.http import see_other, whole_number
from webapp.i18n import FIELD_LABELS
from webapp.messages import Msg
from webapp.models import PottingLot
from webapp.nursery import importer, preview
from webapp.nursery.filters import FILTER_KEYS, FilterError, LotFilter, ordered
from webapp.pdf.layout import DEFAULT_LAYOUT, PRESETS
from webapp.views.jobs import to_job_page

bp = Blueprint("nursery", __name__, url_prefix="/nursery")

PRINT_OPTIONS = ("layout", "start_position", "copies", "offset_x", "offset_y")


def _filter_from_args() -> tuple[LotFilter, Msg | None]:
    try:
        return LotFilter.from_mapping({k: request.args.get(k, "") for k in FILTER_KEYS}), None
    except FilterError as exc:
        return LotFilter(), exc.msg


@bp.get("/potting-lots")
@login_required
def potting_lots() -> ResponseReturnValue:
    """The filtered table; the print button prints every row the filters select."""
    lot_filter, filter_error = _filter_from_args()
    query = lot_filter.apply(sa.select(PottingLot))
    if filter_error:  # a filter we cannot apply selects nothing, rather than everything
        query = query.where(sa.false())
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
    page_size = current_app.config["PAGE_SIZE"]
    pages = max(1, -(-total // page_size))
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), pages)
    rows = db.session.scalars(ordered(query).limit(page_size).offset((page - 1) * page_size)).all()
    choices = {
        "pot_size": db.session.scalars(
            sa.select(PottingLot.pot_size).distinct().order_by(PottingLot.pot_size)
        ).all(),
        "location": db.session.scalars(
            sa.select(PottingLot.location).distinct().order_by(PottingLot.location)
        ).all(),
    }
    print_form = session.pop("print_form", None) or {"values": {}, "errors": {}}
    return render_template(
        "nursery/potting_lots.html",
        rows=rows,
        total=total,
        page=page,
        print_values=print_form["values"],
        print_errors=print_form["errors"],
        pages=pages,
        filters=lot_filter.as_dict(),
        filter_error=filter_error,
        choices=choices,
        layouts=PRESETS.values(),
        default_layout=DEFAULT_LAYOUT,
        lot_count=db.session.scalar(sa.select(sa.func.count(PottingLot.id))),
    )


def _print_options(form: Any) -> dict[str, Any]:
    """Layout, start position, copies and printer offset from a form, typed for the kind."""
    options: dict[str, Any] = {"layout": form.get("layout") or DEFAULT_LAYOUT}
    for key, cast in (
        ("start_position", int),
        ("copies", int),
        ("offset_x", float),
        ("offset_y", float),
    ):
        raw = (form.get(key) or "").strip().replace(",", ".")
        if raw:
            try:
                options[key] = cast(raw)
            except ValueError:
                raise jobs.InvalidParams.field(key, "field_number") from None
    return options


@bp.post("/potting-lots/print")
@login_required
def print_labels() -> ResponseReturnValue:
    """Start a label job for every lot the submitted filters select."""
    return _submit(
        lambda: {
            "filter": {k: request.form.get(k, "") for k in FILTER_KEYS},
            **_print_options(request.form),
        }
    )


@bp.post("/potting-lots/reprint")
@login_required
def reprint() -> ResponseReturnValue:
    """Start a label job for the checked rows (or one lot) with a number of copies."""
    ids = [int(i) for i in request.form.getlist("lot_id") if whole_number(i)]
    if not ids:
        return _back_with(Msg("no_rows_ticked").text())
    return _submit(lambda: {"lot_ids": ids, **_print_options(request.form)})


def _submit(make_params: Callable[[], dict[str, Any]]) -> Any:
    """Start the job, or go back to the table with the reason (a bad option included)."""
    try:
        job, _created = jobs.submit(current_user, "potting_lot_labels", make_params())
    except jobs.InvalidParams as exc:
        # The form comes back as it was sent, each bad option's message next to its field.
        session["print_form"] = {
            "values": {key: request.form.get(key, "") for key in PRINT_OPTIONS},
            "errors": {
                name: msg.text() for name, msg in exc.fields.items() if name in PRINT_OPTIONS
            },
        }
        return _back_with(_field_message(exc))
    return to_job_page(job.id)


def _field_message(exc: jobs.InvalidParams) -> str:
    """The first bad field's message, named as the form labels the field."""
    for name, msg in exc.fields.items():
        if name in FIELD_LABELS:
            return f"{_(FIELD_LABELS[name])}: {msg.text()}"
        return msg.text()
    return exc.msg.text()


def _back_with(message: str) -> Any:
    flash(message, "error")
    return see_other(request.referrer or url_for("nursery.potting_lots"))


@bp.get("/potting-lots/preview.png")
@login_required
def label_preview() -> ResponseReturnValue:
    """A PNG of the first label the current filters would print, in the chosen layout."""
    lot_filter, error = _filter_from_args()
    if error:
        return Response(status=204)
    lot = db.session.scalars(ordered(lot_filter.apply(sa.select(PottingLot))).limit(1)).first()
    if lot is None:
        return Response(status=204)
    try:
        options = _print_options(request.args)
        png = preview.label_png(lot, options)
    except (jobs.InvalidParams, KeyError, ValueError):
        return Response(status=204)
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, max-age=60"})


@bp.route("/potting-lots/import", methods=["GET", "POST"])
@login_required
def import_csv() -> ResponseReturnValue:
    """Upload a CSV (UTF-8 with or without BOM, ',' or ';'): all rows or none."""
    errors: list[importer.RowError] = []
    if request.method == "POST":
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            errors = [importer.RowError.of(0, "csv_choose_file")]
        else:
            try:
                result = importer.import_csv(upload.read())
            except importer.ImportFailed as exc:
                errors = exc.errors
            else:
                flash(
                    _(
                        "Imported %(total)d rows: %(created)d new, %(updated)d updated, "
                        "%(unchanged)d unchanged.",
                        **result.as_dict(),
                    ),
                    "success",
                )
                return redirect(url_for("nursery.potting_lots"), code=303)
    return render_template("nursery/import.html", errors=errors, columns=importer.COLUMNS)


# The export menu's choices: the kind each starts and its options.
EXPORT_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    "csv": ("potting_lots_csv", {}),
    "csv_semicolon": ("potting_lots_csv", {"delimiter": ";"}),  # what Excel expects in NL
    "xlsx": ("potting_lots_xlsx", {}),
}


@bp.post("/potting-lots/export")
@login_required
def export_lots() -> ResponseReturnValue:
    """Start an export (CSV, CSV with ';' or Excel) of every lot the submitted filters select."""
    kind, options = EXPORT_FORMATS.get(request.form.get("format", ""), ("", {}))
    try:
        if not kind:
            raise jobs.InvalidParams.field("format", "field_choice", choices=list(EXPORT_FORMATS))
        job, _created = jobs.submit(
            current_user,
            kind,
            {"filter": {k: request.form.get(k, "") for k in FILTER_KEYS}, **options},
        )
    except jobs.InvalidParams as exc:
        flash(exc.msg.text(), "error")
        return see_other(request.referrer or url_for("nursery.potting_lots"))
    return to_job_page(job.id)
