"""Template filters and globals shared by every page (all locale-aware)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from flask_babel import (
    format_currency,
    format_date,
    format_decimal,
    get_locale,
    gettext,
    ngettext,
)

from webapp import documents
from webapp.http import is_htmx
from webapp.jobs import eta_seconds
from webapp.messages import N_, UNITS, Msg, number
from webapp.pdf.layout import PRESETS

# What a job's state is called on screen; `data-job-status` keeps the raw value.
STATUS_LABELS: dict[str, str] = {
    "queued": N_("Queued"),
    "running": N_("Running"),
    "done": N_("Done"),
    "failed": N_("Failed"),
    "cancelled": N_("Cancelled"),
    "expired": N_("Expired"),
}

# Who started a job that has no owner (schedules, regeneration …), as "My jobs" says it.
ORIGIN_LABELS: dict[str, str] = {
    "user": N_("Page"),
    "api": N_("API"),
    "schedule": N_("Schedule"),
    "regeneration": N_("Regeneration"),
    "event": N_("Automatic"),
}

# The label layouts' names (webapp/pdf/layout.py keeps the English ones).
LAYOUT_NAMES: dict[str, str] = {
    "roll_62x29": N_("Label roll 62 × 29 mm (Brother DK-11209)"),
    "roll_57x32": N_("Label roll 57 × 32 mm (Zebra, Dymo)"),
    "roll_102x51": N_("Label roll 102 × 51 mm (large tags)"),
    "a4_3x8": N_("A4 sheet, 3 × 8 labels of 70 × 37 mm"),
    "a4_2x7": N_("A4 sheet, 2 × 7 labels of 99.1 × 38.1 mm (L7163)"),
}

# The table's filter keys (DESIGN §4), as the filter form labels them.
FILTER_LABELS: dict[str, str] = {
    "q": N_("Search"),
    "lot_number": N_("Lot number starts with"),
    "pot_size": N_("Pot size"),
    "location": N_("Location"),
    "week": N_("Potting week"),
}


# The lab's states and kinds of analysis, as its pages name them.
LAB_LABELS: dict[str, str] = {
    "registered": N_("Announced"),
    "received": N_("Received"),
    "processing": N_("In process"),
    "reported": N_("Reported"),
    "draft": N_("Draft"),
    "final": N_("Final"),
    "cytology": N_("Cytology"),
    "histopathology": N_("Histopathology"),
    "current": N_("Up to date"),
    "updating": N_("Being updated"),
    "stale": N_("Stale"),
    "missing": N_("Being made"),
    "failed": N_("Could not be made"),
    "pending": N_("Waiting to be sent"),
    "done_mail": N_("Sent"),
    "failed_mail": N_("Not sent"),
}


def lab_label(value: str | None) -> str:
    return gettext(LAB_LABELS[value]) if value in LAB_LABELS else (value or "")


def local_date(value: date | None, style: str = "medium") -> str:
    """A date in the reader's language ("1 dic 2026")."""
    return format_date(value, style) if value else ""


def money(cents: int) -> str:
    return format_currency(cents / 100, "EUR")


def duration(seconds: int | None) -> str:
    """A rough time span for an ETA: "about 40 seconds", "about 3 minutes"."""
    if seconds is None:
        return ""
    if seconds < 60:
        # To the second near the end; by 5 s before that (a count-down by the second looks jumpy).
        seconds = max(1, round(seconds)) if seconds < 15 else round(seconds / 5) * 5
        return ngettext("about %(num)d second", "about %(num)d seconds", seconds)
    minutes = round(seconds / 60)
    if minutes < 120:
        return ngettext("about %(num)d minute", "about %(num)d minutes", minutes)
    return ngettext("about %(num)d hour", "about %(num)d hours", round(minutes / 60))


def filesize(size: int | None) -> str:
    """Bytes in the locale's notation: "179.2 KB" / "179,2 KB"."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{format_decimal(value, format='#,##0.#')} {unit}"
        value /= 1024
    return ""


def local_time(value: datetime | None) -> str:
    """A UTC timestamp from the database, shown in the configured time zone."""
    if value is None:
        return ""
    local = value.replace(tzinfo=UTC).astimezone(ZoneInfo(current_app.config["TZ"]))
    today = datetime.now(local.tzinfo).date()
    return local.strftime("%H:%M") if local.date() == today else local.strftime("%Y-%m-%d %H:%M")


def iso_time(value: datetime | None) -> str:
    """The same timestamp for a <time datetime=…> attribute."""
    return value.replace(tzinfo=UTC).isoformat() if value else ""


def layout_name(key: str | None) -> str:
    if key in LAYOUT_NAMES:
        return gettext(LAYOUT_NAMES[key])
    if key == "custom":  # a printer profile's own sizes
        return gettext("Custom layout")
    layout = PRESETS.get(key or "")
    return layout.name if layout else (key or "")


def origin_label(origin: str | None) -> str:
    return gettext(ORIGIN_LABELS[origin]) if origin in ORIGIN_LABELS else (origin or "")


def status_label(status: str | None) -> str:
    return gettext(STATUS_LABELS[status]) if status in STATUS_LABELS else (status or "")


def filter_label(key: str) -> str:
    return gettext(FILTER_LABELS[key]) if key in FILTER_LABELS else key


def percent(done: int, total: int) -> int:
    """Whole percent done; 100 only when everything is."""
    if not total:
        return 0
    return 100 if done >= total else min(int(100 * done / total), 99)


def message(value: Msg | None) -> str:
    """A stored message code, in the reader's language."""
    return value.text() if value else ""


def units(count: int, unit: str) -> str:
    """ "1,200 labels", "1 row": a count with its unit, in the reader's language."""
    one, many = UNITS.get(unit, (unit, unit))
    return f"{number(count)} {gettext(one if count == 1 else many)}"  # en, nl, es: two forms


def job_items(job: Any) -> dict[str, int] | None:
    from webapp.jobs.serialize import items

    return items(job)


def failed_documents(job: Any) -> list[Any]:
    """A bulk job's failed documents (newest 50)."""
    import sqlalchemy as sa

    from webapp.extensions import db
    from webapp.models import Job

    return list(
        db.session.scalars(
            sa.select(Job)
            .where(Job.batch_id == job.id, Job.status == "failed")
            .order_by(Job.finished_at.desc())
            .limit(50)
        )
    )


def current_locale() -> str:
    return str(get_locale() or "en")


def watch_token_for(job: Any) -> str | None:
    """The watch token a page gives the polls of `job` (webapp/jobs/poll.py)."""
    from flask_login import current_user

    from webapp.jobs import poll

    if not current_user or not current_user.is_authenticated:
        return None
    return poll.token(job.id, current_user, current_locale())


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(
        duration=duration,
        filesize=filesize,
        local_time=local_time,
        iso_time=iso_time,
        layout_name=layout_name,
        status_label=status_label,
        origin_label=origin_label,
        filter_label=filter_label,
        number=number,
        msg=message,
        units=units,
        lab_label=lab_label,
        local_date=local_date,
        money=money,
    )
    app.jinja_env.globals.update(
        eta_seconds=eta_seconds,
        percent=percent,
        current_locale=current_locale,
        document_kind=documents.get,
        is_htmx=is_htmx,
        job_items=job_items,
        failed_documents=failed_documents,
        watch_token_for=watch_token_for,
    )
