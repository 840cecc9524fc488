"""The potting-lot table, printing its labels and a label preview (the import: nursery_import)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required
from pydantic import ValidationError

from webapp import jobs
from webapp.documents.potting_lots import MAX_COPIES, CustomLayout
from webapp.extensions import db
from webapp.http import see_other, whole_number
from webapp.i18n import FIELD_LABELS
from webapp.messages import Msg
from webapp.models import PottingLot, PrinterProfile
from webapp.nursery import preview, profiles
from webapp.nursery.filters import FILTER_KEYS, FilterError, LotFilter, ordered
from webapp.nursery.selection import MAX_TICKED, Selection, TooManyTicked
from webapp.pdf.layout import CUSTOM, DEFAULT_LAYOUT, PRESETS
from webapp.views.jobs import to_job_page

bp = Blueprint("nursery", __name__, url_prefix="/nursery")

PRINT_OPTIONS = ("profile_id", "layout", "start_position", "copies", "offset_x", "offset_y")


@bp.record_once
def _favicon(state: Any) -> None:
    """Browsers ask for /favicon.ico whatever the page names: the same icon, not a 404."""
    app = state.app
    app.add_url_rule(
        "/favicon.ico",
        "favicon",
        lambda: send_from_directory(
            app.static_folder or "static", "favicon.svg", mimetype="image/svg+xml", max_age=86400
        ),
    )


def _filter_from_args() -> tuple[LotFilter, Msg | None]:
    try:
        return LotFilter.from_mapping({k: request.args.get(k, "") for k in FILTER_KEYS}), None
    except FilterError as exc:
        return LotFilter(), exc.msg


def _limits() -> dict[str, int]:
    return {"max_copies": MAX_COPIES, "max_labels": current_app.config["MAX_LABELS"]}


def _default_print_values(profile: PrinterProfile | None) -> dict[str, Any]:
    """What the print panel shows: the chosen profile's values, else the last print's."""
    if profile is not None:
        return {
            "profile_id": str(profile.id),
            "layout": profile.layout,
            "start_position": profile.start_position,
            "copies": profile.copies,
            "offset_x": f"{profile.offset_x:g}",
            "offset_y": f"{profile.offset_y:g}",
        }
    return {k: v for k, v in (session.get("print_last") or {}).items() if k != "profile_id"}


def _chosen_profile(choices: list[PrinterProfile]) -> PrinterProfile | None:
    """The profile named in the URL, else the one printed with last (none if the last print
    used none), else the one used or saved last."""
    if "profile" in request.args:
        return profiles.get(current_user, request.args["profile"])
    if "print_profile" in session:
        return profiles.get(current_user, session["print_profile"])
    return choices[0] if choices else None


@bp.get("/potting-lots")
@login_required
def potting_lots() -> ResponseReturnValue:
    """The filtered table. Ticked rows (kept across pages) are what the main button prints;
    without ticks it prints every row the filters select."""
    empty = [k for k, v in request.args.items(multi=True) if not v.strip()]
    if empty:  # a filter form sends every field: keep the address to what filters
        kept = [(k, v) for k, v in request.args.items(multi=True) if v.strip()]
        return redirect(url_for("nursery.potting_lots") + ("?" + urlencode(kept) if kept else ""))
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
    selection = Selection.load()
    profile_list = profiles.for_user(current_user)
    print_form = session.pop("print_form", None)
    if print_form:  # after a refusal: what was sent, with the messages
        profile = profiles.get(current_user, print_form["values"].get("profile_id"))
        print_values, print_errors = print_form["values"], print_form["errors"]
    else:
        profile = _chosen_profile(profile_list)
        print_values, print_errors = _default_print_values(profile), {}
    return render_template(
        "nursery/potting_lots.html",
        rows=rows,
        total=total,
        page=page,
        print_values=print_values,
        print_errors=print_errors,
        pages=pages,
        filters=lot_filter.as_dict(),
        filter_error=filter_error,
        choices=choices,
        layouts=PRESETS.values(),
        default_layout=DEFAULT_LAYOUT,
        lot_count=db.session.scalar(sa.select(sa.func.count(PottingLot.id))),
        ticked_count=selection.count(),
        ticked_every=selection.every is not None,
        ticked_here=selection.ticked_among(lot.id for lot in rows),
        profile_list=profile_list,
        profile=profile,
        profile_layouts={p.id: profiles.layout_of(p) for p in profile_list},
        profile_layout=profiles.layout_of(profile)
        if profile is not None and profile.layout == CUSTOM
        else None,
        describe_layout=profiles.describe,
        **_limits(),
    )


def _print_options(form: Any) -> dict[str, Any]:
    """Layout, start position, copies and printer offset from a form, typed for the kind. A
    custom layout's sizes come from the chosen printer profile (the user's own)."""
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
    if options["layout"] == CUSTOM:
        profile = profiles.get(current_user, form.get("profile_id"))
        if profile is None or profile.layout != CUSTOM:
            raise jobs.InvalidParams.field("layout", "unknown_layout")
        options["custom_layout"] = profile.custom
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


@bp.post("/potting-lots/print-ticked")
@login_required
def print_ticked() -> ResponseReturnValue:
    """Start a label job for exactly the ticked lots: those kept in the session from other
    pages, and this page's as the form sends them (`page_id` names the page's rows)."""
    selection = Selection.load()
    try:
        _tick_page(selection, request.form)
    except TooManyTicked:
        return _back_with(Msg("too_many_ticked", {"limit": MAX_TICKED}).text())
    selection.save()
    ids = selection.lot_ids()
    if not ids:
        return _back_with(Msg("no_rows_ticked").text())
    answer = _submit(lambda: {"lot_ids": ids, **_print_options(request.form)})
    if "print_form" not in session:  # started: the ticks are spent
        Selection().save()
    return answer


def _tick_page(selection: Selection, form: Any) -> None:
    ticked = {int(i) for i in form.getlist("lot_id") if whole_number(i)}
    page = {int(i) for i in form.getlist("page_id") if whole_number(i)} | ticked
    selection.tick(ticked, True)
    selection.tick(page - ticked, False)


@bp.post("/potting-lots/reprint")
@login_required
def reprint() -> ResponseReturnValue:
    """Start a label job for the checked rows (or one lot) with a number of copies."""
    ids = [int(i) for i in request.form.getlist("lot_id") if whole_number(i)]
    if not ids:
        return _back_with(Msg("no_rows_ticked").text())
    return _submit(lambda: {"lot_ids": ids, **_print_options(request.form)})


@bp.post("/potting-lots/selection")
@login_required
def selection() -> ResponseReturnValue:
    """Tick or untick rows (`action` tick/untick with `lot_id`s), tick every lot the filters
    select (`all`), or clear the ticks. JSON for the page's script, else back to the table."""
    current = Selection.load()
    action = request.form.get("action", "")
    ids = {int(i) for i in request.form.getlist("lot_id") if whole_number(i)}
    problem = None
    if action in ("tick", "untick"):
        try:
            current.tick(ids, action == "tick")
        except TooManyTicked:
            problem = Msg("too_many_ticked", {"limit": MAX_TICKED})
            current = Selection.load()
    elif action == "all":
        try:
            current.select_every(
                LotFilter.from_mapping({k: request.form.get(k, "") for k in FILTER_KEYS})
            )
        except FilterError as exc:
            problem = exc.msg
    elif action == "clear":
        current = Selection()
    else:
        problem = Msg("field_choice", {"choices": "tick, untick, all, clear"})
    if problem is None:
        current.save()
    if request.accept_mimetypes.best == "application/json":
        body: dict[str, Any] = {"count": current.count(), "every": current.every is not None}
        if problem:
            body["error"] = problem.text()
        return body, 422 if problem else 200
    if problem:
        flash(problem.text(), "error")
    return see_other(request.referrer or url_for("nursery.potting_lots"))


def _submit(make_params: Callable[[], dict[str, Any]]) -> Any:
    """Start the job, or go back to the table with the reason (a bad option included)."""
    try:
        job, _created = jobs.submit(current_user, "potting_lot_labels", make_params())
    except jobs.InvalidParams as exc:
        # The form comes back as it was sent, each bad option's message next to its field.
        session["print_form"] = {
            "values": {key: request.form.get(key, "") for key in PRINT_OPTIONS},
            "errors": {
                name.removeprefix("custom_layout."): msg.text()
                for name, msg in exc.fields.items()
                if name.split(".")[0] in PRINT_OPTIONS + ("custom_layout",)
            },
        }
        # The pre-flight's refusal of the selection (characters no font has) goes next to
        # the print buttons.
        selection = exc.fields.get("lot_ids") or exc.fields.get("filter")
        if selection is not None and selection.code == "no_font_for":
            session["print_form"]["errors"]["print"] = selection.text()
        return _back_with(_field_message(exc))
    # The next visit starts from what was printed: the profile, or these options.
    profile = profiles.get(current_user, request.form.get("profile_id"))
    session["print_profile"] = profile.id if profile else ""
    session["print_last"] = {key: request.form.get(key, "") for key in PRINT_OPTIONS}
    if profile is not None:
        profiles.mark_used(profile)
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


def _png(png: bytes) -> Response:
    # The ticks change under the same address: those previews are asked for again each time.
    fresh = request.args.get("ticked") == "1"
    cache = "private, no-cache" if fresh else "private, max-age=60"
    return Response(png, mimetype="image/png", headers={"Cache-Control": cache})


def _preview_options(args: Any) -> dict[str, Any]:
    """The print options, or the profile form's sizes as typed (`layout` custom_roll or
    custom_sheet), checked by the kind's schema (ValueError when they do not fit)."""
    choice = args.get("layout")
    if choice not in (profiles.CUSTOM_ROLL, profiles.CUSTOM_SHEET):
        return _print_options(args)
    sheet = choice == profiles.CUSTOM_SHEET
    spec: dict[str, Any] = {"kind": "sheet" if sheet else "roll"}
    for key in (*profiles.SIZE_FIELDS, *profiles.COUNT_FIELDS) if sheet else profiles.ROLL_FIELDS:
        if (args.get(key) or "").strip():
            spec[key] = profiles.number(args[key], int if key in profiles.COUNT_FIELDS else float)
    try:
        custom = CustomLayout.model_validate(spec).model_dump()
    except ValidationError as exc:
        raise ValueError(str(exc)) from None
    options = _print_options({k: v for k, v in args.items() if k != "layout"})
    return {**options, "layout": CUSTOM, "custom_layout": custom, "copies": 1}


@bp.get("/potting-lots/preview.png")
@login_required
def label_preview() -> ResponseReturnValue:
    """A PNG of the first label the current filters (or the ticks, `ticked=1`) would print."""
    if request.args.get("ticked") == "1":
        lot = next(iter(Selection.load().first_lots(1)), None)
    else:
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
    return _png(png)


@bp.get("/potting-lots/sheet.png")
@login_required
def sheet_preview() -> ResponseReturnValue:
    """The whole first sheet as it will print: the skipped positions hatched, the start
    position framed, then the first labels of the ticked lots (`ticked=1`) or the filter's."""
    try:
        options = _preview_options(request.args)
        layout = preview.layout_of(options)
    except (jobs.InvalidParams, KeyError, ValueError):
        return Response(status=204)
    room = layout.per_page
    if request.args.get("ticked") == "1":
        lots = Selection.load().first_lots(room)
    else:
        lot_filter, error = _filter_from_args()
        if error:
            return Response(status=204)
        lots = list(
            db.session.scalars(ordered(lot_filter.apply(sa.select(PottingLot))).limit(room))
        )
    if not lots:
        return Response(status=204)
    try:
        png = preview.sheet_png(lots, options)
    except (jobs.InvalidParams, KeyError, ValueError):
        return Response(status=204)
    return _png(png)


# -- printer profiles ---------------------------------------------------------------------------


@bp.get("/printer-profiles")
@login_required
def printer_profiles() -> ResponseReturnValue:
    """The user's printer profiles, with their layouts; new, edit, use and delete."""
    return render_template(
        "nursery/printer_profiles.html",
        profile_list=profiles.for_user(current_user),
        describe_layout=profiles.describe,
    )


@bp.route("/printer-profiles/new", methods=["GET", "POST"])
@bp.route("/printer-profiles/<int:profile_id>", methods=["GET", "POST"])
@login_required
def printer_profile(profile_id: int | None = None) -> ResponseReturnValue:
    """One profile's form; a refused one comes back with what was typed and the messages."""
    profile = None
    if profile_id is not None:
        profile = profiles.get(current_user, profile_id)
        if profile is None:
            abort(404)
    values, errors = profiles.form_values(profile), {}
    if request.method == "POST":
        try:
            saved = profiles.save(
                current_user, profile, profiles.parse(request.form, current_user, profile)
            )
        except profiles.ProfileInvalid as exc:
            values = {k: request.form.get(k, "") for k in profiles.FORM_FIELDS}
            errors = {k: msg.text() for k, msg in exc.fields.items()}
        else:
            session["print_profile"] = saved.id
            flash(_("Printer profile “%(name)s” saved.", name=saved.name), "success")
            return see_other(url_for("nursery.potting_lots"))
    return (
        render_template(
            "nursery/printer_profile.html",
            profile=profile,
            values=values,
            errors=errors,
            layouts=PRESETS.values(),
            custom_choices=(profiles.CUSTOM_ROLL, profiles.CUSTOM_SHEET),
            **_limits(),
        ),
        422 if errors else 200,
    )


@bp.post("/printer-profiles/<int:profile_id>/use")
@login_required
def use_printer_profile(profile_id: int) -> ResponseReturnValue:
    """Print with this profile from now on (the table preselects it)."""
    profile = profiles.get(current_user, profile_id)
    if profile is not None:
        profiles.mark_used(profile)
        session["print_profile"] = profile.id
        session.pop("print_form", None)
    return see_other(url_for("nursery.potting_lots"))


@bp.post("/printer-profiles/<int:profile_id>/delete")
@login_required
def delete_printer_profile(profile_id: int) -> ResponseReturnValue:
    profile = profiles.get(current_user, profile_id)
    if profile is not None:
        name = profile.name
        profiles.delete(profile)
        if session.get("print_profile") == profile_id:
            session.pop("print_profile")
        flash(_("Printer profile “%(name)s” deleted.", name=name), "success")
    return see_other(url_for("nursery.printer_profiles"))


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
