"""The potting-lot import in the browser (DESIGN §5): choose a file, check its columns and rows
(a dry run, as often as wanted), then import. Routes on the nursery blueprint.

1. GET/POST  /nursery/potting-lots/import             choose a CSV or .xlsx file; it is kept
2. GET       /nursery/potting-lots/import/<token>     the columns, the dry run and a preview
3. POST      /nursery/potting-lots/import/<token>     import: one write transaction, or nothing
   POST      /nursery/potting-lots/import/<token>/discard
   GET       /nursery/potting-lots/import/template.csv|xlsx

The step page is a GET with the mapping in its query string: reloading it, or going back to it,
shows the same dry run; an error never loses the file (it stays on the server for an hour).
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, flash, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.exceptions import RequestEntityTooLarge

from webapp.http import see_other
from webapp.messages import Msg
from webapp.nursery import importer
from webapp.views.nursery import bp

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _data_dir() -> str:
    return str(current_app.config["PRESSROOM_DATA"])


def _limit_mb() -> int | float:
    limit = (current_app.config.get("MAX_CONTENT_LENGTH") or 0) / (1024 * 1024)
    return int(limit) if limit >= 1 and float(limit).is_integer() else round(limit, 2)


def _locale() -> str:
    return str(get_locale() or "en")


def _start_page(error: importer.RowError | None = None, status: int = 200) -> ResponseReturnValue:
    return render_template(
        "nursery/import.html",
        error=error,
        fields=importer.FIELDS,
        max_bytes=current_app.config.get("MAX_CONTENT_LENGTH") or 0,
        limit_mb=_limit_mb(),
    ), status


@bp.route("/potting-lots/import", methods=["GET", "POST"])
@login_required
def import_csv() -> ResponseReturnValue:
    """Step 1: choose a CSV or Excel file. A file we can read is kept and its columns shown."""
    if request.method == "GET":
        return _start_page()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _start_page(importer.RowError.of(0, "imp_choose_file"), 400)
    data = upload.read()
    try:
        importer.read_table(data)
    except importer.ImportFailed as exc:
        return _start_page(exc.errors[0], 422)
    kept = importer.save_upload(_data_dir(), data, upload.filename, current_user.id)
    return see_other(url_for("nursery.import_step", token=kept.token))


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc: RequestEntityTooLarge) -> ResponseReturnValue:
    """Over MAX_CONTENT_LENGTH: the import page says the limit (other nursery forms send no
    files, so any 413 here is an upload)."""
    return _start_page(importer.RowError.of(0, "imp_too_large", limit=_limit_mb()), 413)


def _kept(token: str) -> tuple[importer.Upload, importer.Table] | None:
    importer.sweep(_data_dir())  # uploads left over an hour, whoever's they are
    upload = importer.load_upload(_data_dir(), token, current_user.id)
    if upload is None:
        return None
    try:
        table = importer.read_table(upload.read(_data_dir()))
    except (importer.ImportFailed, OSError):
        importer.discard(_data_dir(), token)
        return None
    return upload, table


def _gone() -> ResponseReturnValue:
    flash(Msg("imp_expired").text(), "error")
    return see_other(url_for("nursery.import_csv"))


def _step_page(
    upload: importer.Upload, plan: importer.Plan, status: int = 200
) -> ResponseReturnValue:
    shown = list(plan.rows[: importer.PREVIEW_ROWS])
    shown += [r for r in plan.rows[importer.PREVIEW_ROWS :] if r.errors][:50]
    mapping_form: dict[str, Any] = {
        f"col_{name}": "" if index is None else str(index) for name, index in plan.mapping.items()
    }
    mapping_form["dates"] = plan.options.dates
    mapping_form["numbers"] = plan.options.numbers
    errors = plan.errors()
    return render_template(
        "nursery/import_step.html",
        upload=upload,
        plan=plan,
        table=plan.table,
        columns=plan.table.column_names(),
        fields=importer.FIELDS,
        counts=plan.counts(),
        shown=shown,
        errors=errors,
        more_errors=plan.error_count() - len(errors),
        column_errors={e.field: e.msg for e in plan.problems},
        mapping_form=mapping_form,
        samples=_samples(plan),
    ), status


def _samples(plan: importer.Plan) -> dict[int, str]:
    """The first non-empty value of each column of the file, to help choose."""
    found: dict[int, str] = {}
    for _number, cells in plan.table.rows[:50]:
        for i, cell in enumerate(cells):
            if i not in found and (text := importer._text(cell)):
                found[i] = text[:60]
    return found


def _planned(token: str, fields: Any) -> tuple[Any, Any] | None:
    """The kept upload and its dry run with the columns and options in `fields` (the step's
    query string, or the commit's form); None when the upload is gone."""
    kept = _kept(token)
    if kept is None:
        return None
    upload, table = kept
    options = importer.Options.from_form(fields, _locale())
    return upload, importer.check(table, importer.mapping_from(fields, table), options)


@bp.get("/potting-lots/import/<token>")
@login_required
def import_step(token: str) -> ResponseReturnValue:
    """Step 2: the proposed (or chosen) columns, the dry run's counts and errors, a preview."""
    planned = _planned(token, request.args)
    if planned is None:
        return _gone()
    upload, plan = planned
    return _step_page(upload, plan)


@bp.post("/potting-lots/import/<token>")
@login_required
def import_commit(token: str) -> ResponseReturnValue:
    """Step 3: import every row in one transaction, or none (then the dry run shows why)."""
    planned = _planned(token, request.form)
    if planned is None:
        return _gone()
    upload, plan = planned
    try:
        result = importer.commit(plan)
    except importer.ImportFailed:
        return _step_page(upload, plan, 422)
    importer.discard(_data_dir(), token)
    flash(
        _(
            "Imported %(total)d rows: %(created)d new, %(updated)d updated, "
            "%(unchanged)d unchanged.",
            **result.as_dict(),
        ),
        "success",
    )
    return see_other(url_for("nursery.potting_lots"))


@bp.post("/potting-lots/import/<token>/discard")
@login_required
def import_discard(token: str) -> ResponseReturnValue:
    """Forget an upload (the "Choose another file" button)."""
    if importer.load_upload(_data_dir(), token, current_user.id) is not None:
        importer.discard(_data_dir(), token)
    return see_other(url_for("nursery.import_csv"))


@bp.get("/potting-lots/import/template.<fmt>")
@login_required
def import_template(fmt: str) -> ResponseReturnValue:
    """A file to fill in: the column names in the user's language and one example row."""
    locale = _locale()
    if fmt == "csv":
        body, mimetype = importer.template_csv(locale), "text/csv; charset=utf-8"
    elif fmt == "xlsx":
        body, mimetype = importer.template_xlsx(locale), XLSX_TYPE
    else:
        return Response(status=404)
    disposition = f'attachment; filename="potting-lots-template-{locale}.{fmt}"'
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": disposition})
