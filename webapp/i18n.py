"""Locale choice, and the Dutch face of the English messages the job engine stores.

The engine, the document kinds and the CSV importer speak English: their messages go to the API
and into the job row (`error`, `progress_step`), written by a worker that has no user and no
locale. The browser shows them through `translate_message`, which recognises the known phrasings
and returns the catalogue's translation, keeping the values they carry. Anything it does not
recognise is shown as it is, so a new message is never lost, only untranslated.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import current_app, has_request_context, request
from flask_babel import gettext
from flask_login import current_user
from werkzeug import exceptions


def N_(message: str) -> str:  # the marker pybabel extracts by default
    """Mark `message` for extraction; it is translated later, where it is shown."""
    return message


def select_locale() -> str | None:
    """The user's own choice, then the browser's languages (Accept-Language), then English."""
    languages = current_app.config["LANGUAGES"]
    if current_user and current_user.is_authenticated and current_user.locale in languages:
        return current_user.locale
    if not has_request_context():
        return None
    return request.accept_languages.best_match(languages)


# (pattern over the English text, catalogue message with the pattern's named groups)
_PATTERNS: list[tuple[str, str]] = [
    # progress steps (job.progress_step)
    (r"Waiting for a worker", N_("Waiting for a worker")),
    (r"Starting", N_("Starting")),
    (r"Drawing labels", N_("Drawing labels")),
    (r"Writing the file", N_("Writing the file")),
    (r"Saving", N_("Saving")),
    (r"Ready", N_("Ready")),
    (r"Cancelled", N_("Cancelled")),
    (r"Failed", N_("Failed")),
    (r"Expired", N_("Expired")),
    (r"Rendering in (?P<n>\d+) parts", N_("Rendering in %(n)s parts")),
    (r"Merging (?P<n>\d+) parts", N_("Merging %(n)s parts")),
    (r"Retrying in (?P<n>\d+) s", N_("Retrying in %(n)s s")),
    # job errors (job.error) and refusals at submit
    (r"No such job\.", N_("No such job.")),
    (r"This batch has (?P<total>[\d,]+) labels; the limit is (?P<limit>[\d,]+)\. "
     r"Narrow the filters or print fewer copies\.",
     N_("This batch has %(total)s labels; the limit is %(limit)s. "
        "Narrow the filters or print fewer copies.")),
    (r"This batch has (?P<total>[\d,]+) labels; the limit is (?P<limit>[\d,]+)\.",
     N_("This batch has %(total)s labels; the limit is %(limit)s.")),
    (r"This job is already (?P<status>\w+); there is nothing to cancel\.",
     N_("This job has already ended; there is nothing to cancel.")),
    (r"This job is (?P<status>\w+); only failed, cancelled or expired jobs can be retried\.",
     N_("Only failed, cancelled or expired jobs can be run again.")),
    (r"No potting lots match these filters; change or clear them\.",
     N_("No potting lots match these filters; change or clear them.")),
    (r"Unknown potting lot ids: (?P<ids>.+)\.", N_("Unknown potting lots: %(ids)s.")),
    (r"'(?P<field>\w+)' must be a whole number from (?P<low>-?\d+) to (?P<high>-?\d+)\.",
     N_("%(field)s must be a whole number from %(low)s to %(high)s.")),
    (r"'(?P<field>\w+)' must be a number of millimetres from -10 to 10\.",
     N_("%(field)s must be a number of millimetres from -10 to 10.")),
    (r"(?P<field>\w+) must be a number\.", N_("%(field)s must be a number.")),
    (r"Unknown layout.*", N_("Unknown label layout; choose one from the list.")),
    (r"Potting lot #(?P<id>\d+) was deleted after this job was started; print the labels again\.",
     N_("Potting lot #%(id)s was deleted after this job was started; print the labels again.")),
    (r"Stopped after the time limit of (?P<n>\d+) minutes\. (?P<rest>.*)",
     N_("Stopped after the time limit of %(n)s minutes. "
        "Split the batch into smaller ones and try again.")),
    (r"Parts of this batch are missing \((?P<parts>.*)\); retry it\.",
     N_("Parts of this batch are missing (%(parts)s); try again.")),
    (r"Merging the parts failed: (?P<reason>.*)", N_("Merging the parts failed: %(reason)s")),
    # filters (the table's GET parameters)
    (r"Week '(?P<value>.*)' is not like 2026-W48 \(ISO year, W, week number\)\.",
     N_("Week '%(value)s' is not like 2026-W48 (ISO year, W, week number).")),
    (r"(?P<year>\d+) has no ISO week (?P<week>\d+)\.", N_("%(year)s has no ISO week %(week)s.")),
    # CSV import
    (r"The file is not UTF-8 text\. Save it as 'CSV UTF-8' and try again\.",
     N_("The file is not UTF-8 text. Save it as 'CSV UTF-8' and try again.")),
    (r"The file is empty\.", N_("The file is empty.")),
    (r"The file has a header but no rows\.", N_("The file has a header but no rows.")),
    (r"Missing column\(s\): (?P<missing>.*)\. The header must name: (?P<columns>.*)\.",
     N_("Missing column(s): %(missing)s. The header must name: %(columns)s.")),
    (r"(?P<column>\w+) is empty", N_("%(column)s is empty")),
    (r"(?P<column>\w+) is longer than (?P<n>\d+) characters",
     N_("%(column)s is longer than %(n)s characters")),
    (r"quantity (?P<value>.*) is not a whole number ≥ 0",
     N_("quantity %(value)s is not a whole number ≥ 0")),
    (r"potting_date (?P<value>.*) is not a date like 2026-11-23",
     N_("potting_date %(value)s is not a date like 2026-11-23")),
    (r"this line cannot be read as CSV \((?P<reason>.*)\)",
     N_("this line cannot be read as CSV (%(reason)s)")),
    (r"lot_number (?P<value>.*) already appears on line (?P<line>\d+)",
     N_("lot_number %(value)s already appears on line %(line)s")),
    # Werkzeug's default descriptions on the error page
    (re.escape(exceptions.NotFound.description or ""),
     N_("There is no page at this address. Check the link, or start again from the menu.")),
    (re.escape(exceptions.Forbidden.description or ""),
     N_("Your account may not open this page. Ask an administrator if you need it.")),
    (re.escape(exceptions.MethodNotAllowed.description or ""),
     N_("This page cannot be used this way. Go back and use the page's own buttons.")),
    (re.escape(exceptions.RequestEntityTooLarge.description or ""),
     N_("The file is too large to upload.")),
    (re.escape(exceptions.BadRequest.description or ""),
     N_("The request could not be understood. Reload the page and try again.")),
]
# Form fields named in messages, as the page labels them.
FIELD_LABELS: dict[str, str] = {
    "layout": N_("Layout"),
    "start_position": N_("Start at label"),
    "copies": N_("Copies"),
    "offset_x": N_("Offset → mm"),
    "offset_y": N_("Offset ↓ mm"),
}
_COMPILED = [(re.compile(pattern, re.DOTALL), message) for pattern, message in _PATTERNS]
_GAVE_UP = re.compile(r"(?P<message>.*) \(gave up after (?P<n>\d+) attempts\)", re.DOTALL)


def translate_message(text: str | None, gettext: Callable[..., str] = gettext) -> str:
    """The current locale's version of an engine message; unknown messages come back as they are."""
    if not text:
        return ""
    gave_up = _GAVE_UP.fullmatch(text)
    if gave_up:
        return gettext("%(message)s (gave up after %(n)s attempts)",
                       message=translate_message(gave_up["message"], gettext), n=gave_up["n"])
    for pattern, message in _COMPILED:
        match = pattern.fullmatch(text)
        if match:
            values = match.groupdict()
            if "field" in values:
                values["field"] = gettext(FIELD_LABELS.get(values["field"], values["field"]))
            return gettext(message, **values) if values else gettext(message)
    return text


def catalogue_messages() -> list[str]:
    """Every message `translate_message` can produce (tests check each is translated)."""
    return [message for _pattern, message in _PATTERNS] + [
        "%(message)s (gave up after %(n)s attempts)"]
