"""Messages are codes: a code plus parameters, stored as such and rendered in the reader's language.

Workers have no user and no locale, so the engine, the document kinds and the importer never
store a sentence. They store a `Msg` (code + JSON parameters); a page renders it with
Flask-Babel in the reader's locale (numbers grouped the locale's way), and the API adds the
English text beside the code. `CATALOGUE` is the one list of codes: a test fails when a raised
code is missing here or lacks a translation in any language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from babel import Locale
from babel.numbers import format_decimal, get_group_symbol
from flask_babel import force_locale, format_number, get_locale, gettext


def N_(message: str) -> str:  # the marker pybabel extracts by default
    """Mark `message` for extraction; it is translated where it is shown."""
    return message


def number(value: int | float | None) -> str:
    """A count with the locale's digit grouping: 1,000 / 1.000."""
    value = value or 0
    if type(value) is int and (symbol := _thousands(get_locale())) is not None:
        return f"{value:,}".replace(",", symbol)
    return format_number(value)


@cache
def _thousands(locale: Locale | None) -> str | None:
    """The locale's group symbol where Babel groups its whole numbers by threes (every language
    offered): Python's own grouping gives Babel's text then, at a tenth of the cost (a status
    fragment shows three counts). None leaves other locales to Babel."""
    if locale is None:
        return None
    symbol = get_group_symbol(locale)
    samples = (-1234567, 1234, 12345678901)
    if all(format_decimal(n, locale=locale) == f"{n:,}".replace(",", symbol) for n in samples):
        return symbol
    return None


CATALOGUE: dict[str, str] = {
    # -- progress steps (job.step_code) ----------------------------------------------------
    "waiting": N_("Waiting for a worker"),
    "starting": N_("Starting"),
    "drawing_labels": N_("Drawing labels"),
    "writing_rows": N_("Writing rows"),
    "writing_file": N_("Writing the file"),
    "saving": N_("Saving"),
    "ready": N_("Ready"),
    "cancelled": N_("Cancelled"),
    "failed": N_("Failed"),
    "expired": N_("Expired"),
    "rendering_parts": N_("Rendering in %(parts)s parts"),
    "merging_parts": N_("Merging %(parts)s parts"),
    "retrying_in": N_("Retrying in %(seconds)s s"),
    "drawing_pages": N_("Laying out the pages"),
    "queuing_documents": N_("Queuing documents: %(count)s of %(total)s"),
    "waiting_documents": N_("Waiting for %(count)s documents"),
    "updating_protocols": N_("Updating the protocols"),
    # -- job errors (job.error_code) -------------------------------------------------------
    "time_limit": N_(
        "Stopped after the time limit of %(minutes)s minutes. "
        "Split the batch into smaller ones and try again."
    ),
    "worker_stopped": N_("Its worker stopped."),
    "worker_silent": N_("Its worker stopped answering."),
    "disk_full": N_(
        "The file could not be written: the disk is full. Ask an administrator to free space."
    ),
    "not_writable": N_(
        "The file could not be written: the artifact directory is not writable. "
        "Ask an administrator to check its permissions."
    ),
    "file_error": N_("The file could not be written: %(reason)s."),
    "disk_full_sized": N_(
        "The disk is full: %(free)s MB free, about %(needed)s MB needed. "
        "Free space or ask an administrator."
    ),
    "disk_full_free": N_("The disk is full: %(free)s MB free. Free space or ask an administrator."),
    "disk_quota": N_(
        "The file could not be written: the disk quota is used up (%(free)s MB free). "
        "Free space or ask an administrator."
    ),
    "disk_io_error": N_(
        "The file could not be written: the disk reported an input/output error. "
        "Ask an administrator to check the disk."
    ),
    "database_busy": N_(
        "The database cannot be written now (%(holder)s); try again in a few seconds."
    ),
    "unexpected": N_("Unexpected error: %(reason)s"),
    "parts_missing": N_("Parts of this batch are missing (%(parts)s); try again."),
    "merge_failed": N_("Merging the parts failed: %(reason)s"),
    "rows_changed": N_(
        "The potting lots changed while this export was being made (an import "
        "or an edit); try again to export the rows as they are now."
    ),
    "lab_rows_changed": N_(
        "The protocols or reports changed while this export was being made; "
        "try again to export the rows as they are now."
    ),
    "lot_deleted": N_(
        "Potting lot #%(id)s was deleted after this job was started; print the labels again."
    ),
    "protocol_gone": N_("Protocol #%(id)s was deleted or is no longer received."),
    "protocols_changed": N_(
        "The protocols received that day changed while the labels were being made; try again."
    ),
    "report_gone": N_("Report #%(id)s was deleted after finalising was started."),
    "work_order_gone": N_("Work order #%(id)s was deleted."),
    "mail_refused": N_("The mail server refused the mail for good (%(status)s: %(reason)s)."),
    "mail_attachment_missing": N_("The attachment %(name)s is no longer on disk."),
    "mail_unbuildable": N_("The mail could not be written: %(reason)s."),
    # -- refusals (HTTP errors, params) ----------------------------------------------------
    "not_found": N_("No such job."),
    "unknown_kind": N_("Unknown kind %(kind)s; use one of: %(kinds)s."),
    "not_allowed": N_("Your account may not start this kind of job."),
    "not_allowed_everyone": N_("Only administrators may list everyone's jobs."),
    "not_allowed_control": N_(
        "Only the person who started this job, or an administrator, may cancel or restart it."
    ),
    "too_many": N_(
        "This job has %(total)s %(unit)s; the limit is %(limit)s. Narrow the filters and try again."
    ),
    "already_final": N_("This job has already ended; there is nothing to cancel."),
    "not_retryable": N_("Only failed, cancelled or expired jobs can be run again."),
    "file_not_ready": N_("The file is not ready yet."),
    "file_expired": N_(
        "This file has expired and was removed. Regenerate it to download it again."
    ),
    "file_missing": N_("This file is no longer on disk. Regenerate it to download it again."),
    "bad_body": N_('The body must be a JSON object like {"kind": …, "params": {…}}.'),
    "bad_object": N_("The body must be a JSON object with the fields to set."),
    "invalid_params": N_("Some parameters are not valid; see the fields."),
    "no_lots_match": N_("No potting lots match these filters; change or clear them."),
    "unknown_lots": N_("Unknown potting lots: %(ids)s."),
    "no_rows_ticked": N_("Tick at least one row to reprint."),
    "unknown_layout": N_("Unknown label layout; choose one from the list."),
    "no_font_for": N_(
        "No installed font has these characters, so the labels were not started: "
        "%(problems)s. Change these texts or ask an administrator to install a font "
        "that has them."
    ),
    "qr_too_small": N_(
        "The QR code of %(lot)s would print with modules of %(module)s mm, too small for a "
        "%(dpi)s dpi printer (at least %(smallest)s mm). Layouts that work: %(layouts)s."
    ),
    "layout_too_wide": N_("The labels run %(mm)s mm past the sheet's right edge."),
    "layout_too_tall": N_("The labels run %(mm)s mm past the sheet's bottom edge."),
    "profile_name_taken": N_("You already have a printer profile of this name."),
    "too_many_ticked": N_(
        "Tick at most %(limit)s rows one by one; for more, filter them and tick all matching lots."
    ),
    "one_of_lots_or_filter": N_("Give either the lots or a filter, not both."),
    # -- the lab ---------------------------------------------------------------------------
    "unknown_protocol": N_("There is no protocol #%(id)s."),
    "protocol_not_received": N_(
        "Protocol #%(id)s has not been received yet; receive it first (Reception)."
    ),
    "already_received": N_("This protocol was received already (%(number)s)."),
    "no_protocols_received": N_("No protocols were received on %(date)s; pick another day."),
    "qr_too_dense": N_(
        "The QR code would have modules of %(module)s mm, finer than a %(dpi)s dpi printer "
        "prints reliably (at least %(smallest)s mm). Use a shorter SITE_URL or set "
        "LABEL_PRINTER_DPI=300 for a 300 dpi printer."
    ),
    "unknown_report": N_("There is no report #%(id)s."),
    "report_not_draft": N_(
        "Report %(number)s is final already; only draft reports can be finalised."
    ),
    "unknown_work_order": N_("There is no work order #%(id)s."),
    "work_order_failed": N_(
        "The PDF of work order %(id)s could not be made; see job %(job)s and retry it."
    ),
    "field_one_line": N_("Enter one line of text (no line breaks or control characters)."),
    "period_day": N_("Enter a day like 2026-12-01."),
    "not_regenerable": N_("Choose a kind that can be regenerated: %(choices)s."),
    "nothing_to_set": N_("Say what to set: a status, or assigned_to."),
    "unknown_template": N_("Unknown mail template; choose one of: %(choices)s."),
    "period_week": N_("Enter an ISO week like 2026-W49."),
    "unknown_veterinarian": N_("There is no veterinarian #%(id)s."),
    "protocols_of_other_vet": N_("Protocols %(ids)s are not of this work order's veterinarian."),
    "no_protocols_match": N_("No protocols match these filters; change or clear them."),
    "no_reports_match": N_("No reports match these filters; change or clear them."),
    # -- field errors (pydantic error types, and our own) ----------------------------------
    "field_required": N_("This field is required."),
    "field_unknown": N_("Unknown field."),
    "field_integer": N_("Enter a whole number."),
    "field_number": N_("Enter a number."),
    "field_text": N_("Enter text."),
    "field_list": N_("Enter a list."),
    "field_object": N_("Enter an object with named fields."),
    "field_min": N_("Enter %(limit)s or more."),
    "field_max": N_("Enter %(limit)s or less."),
    "field_range": N_("Enter a number from %(low)s to %(high)s."),
    "field_too_short": N_("Enter at least %(limit)s."),
    "field_too_long": N_("Enter at most %(limit)s."),
    "field_choice": N_("Choose one of: %(choices)s."),
    "field_boolean": N_("Enter true or false."),
    "field_date": N_("Enter a date like 2026-12-01."),
    "field_invalid": N_("This value is not valid."),
    # -- table filters ---------------------------------------------------------------------
    "week_format": N_("Week '%(value)s' is not like 2026-W48 (ISO year, W, week number)."),
    "week_missing": N_("%(year)s has no ISO week %(week)s."),
    "filter_object": N_("The filter must be an object with the table's filter keys."),
    "filter_unknown": N_("Unknown filter %(key)s; use %(keys)s."),
    "filter_text": N_("Filter %(key)s must be text."),
    "dates_reversed": N_("The end date is before the start date."),
    # -- import of potting lots (CSV, XLSX) ------------------------------------------------
    "csv_empty": N_("The file is empty."),
    "csv_no_rows": N_("The file has a header but no rows."),
    "csv_unreadable": N_("this line cannot be read as CSV (%(reason)s)"),
    "imp_choose_file": N_("Choose a CSV or Excel (.xlsx) file to import."),
    "imp_not_table": N_(
        "This is not a CSV or Excel (.xlsx) file. Save the spreadsheet as CSV or .xlsx "
        "and choose it again."
    ),
    "imp_xls": N_(
        "Old Excel files (.xls) cannot be read. Save it as an Excel workbook (.xlsx) or CSV "
        "and choose it again."
    ),
    "imp_bad_xlsx": N_(
        "This Excel file cannot be read (%(reason)s). Save it again as .xlsx or CSV."
    ),
    "imp_undecodable": N_(
        "The file's text cannot be read as UTF-8 or Windows-1252 (at byte %(position)s). "
        "Save it as 'CSV UTF-8' and choose it again."
    ),
    "imp_too_many_rows": N_("The file has more than %(limit)s rows; split it into smaller files."),
    "imp_too_large": N_(
        "The file is too large: the limit is %(limit)s MB. Split it into smaller files."
    ),
    "imp_expired": N_(
        "This upload has expired (after an hour) or was imported already. Choose the file again."
    ),
    "imp_column_missing": N_("required: choose the file's column for it"),
    "imp_column_twice": N_("this column is already used for another field"),
    "imp_empty": N_("required, but empty"),
    "imp_too_long": N_("longer than %(n)s characters"),
    "imp_not_whole": N_("%(value)s is not a whole number of 0 or more"),
    "imp_not_date": N_("%(value)s is not a date like %(example)s or 2026-11-23"),
    "imp_duplicate": N_("%(value)s is on row %(row)s already"),
}

# How many times an attempt was made, appended when the engine gave up (error_params["attempts"]).
GAVE_UP = N_("%(message)s (gave up after %(attempts)s attempts)")

#: Units of progress, as counted nouns (`unit` of a kind; the API's `progress.unit`).
UNITS: dict[str, tuple[str, str]] = {
    "label": (N_("label"), N_("labels")),
    "row": (N_("row"), N_("rows")),
    "page": (N_("page"), N_("pages")),
    "document": (N_("document"), N_("documents")),
    "mail": (N_("mail"), N_("mails")),
    "step": (N_("step"), N_("steps")),
}


@dataclass(frozen=True)
class Msg:
    """A message as stored: a catalogue code and the values it is filled with (JSON types)."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in CATALOGUE:
            raise KeyError(f"message code {self.code!r} is not in webapp/messages.py CATALOGUE")

    def text(self) -> str:
        """In the current locale (a request's), numbers grouped the locale's way."""
        return render(self.code, self.params)

    def english(self) -> str:
        """For the API, the logs and the JSON `message`."""
        return english(self.code, self.params)

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "params": self.params}


def _values(params: dict[str, Any], translate: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, bool):
            values[key] = value
        elif isinstance(value, int | float):
            values[key] = number(value)
        elif key == "unit" and isinstance(value, str) and value in UNITS:
            values[key] = gettext(UNITS[value][1]) if translate else UNITS[value][1]
        elif isinstance(value, list):
            values[key] = ", ".join(str(v) for v in value)
        else:
            values[key] = "" if value is None else str(value)
    return values


def render(code: str | None, params: dict[str, Any] | None = None) -> str:
    """The message in the current locale; an unknown code shows as itself (never lost)."""
    if not code:
        return ""
    params = params or {}
    template = CATALOGUE.get(code)
    if template is None:
        return code
    values = _values({k: v for k, v in params.items() if k != "attempts"}, translate=True)
    text = gettext(template, **values) if "%(" in template else gettext(template)
    if params.get("attempts"):
        text = gettext(GAVE_UP, message=text, attempts=number(params["attempts"]))
    return text


def english(code: str | None, params: dict[str, Any] | None = None) -> str:
    """The English text, whatever the request's locale (the API's `message`, logs)."""
    with force_locale("en"):
        return render(code, params)
