"""Template filters and globals shared by every page."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from flask_babel import format_decimal, get_locale, ngettext

from webapp.jobs import eta_seconds
from webapp.pdf.layout import PRESETS


def duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return ngettext("about %(num)d second", "about %(num)d seconds", max(seconds, 1))
    minutes = round(seconds / 60)
    return ngettext("about %(num)d minute", "about %(num)d minutes", minutes)


def filesize(size: int | None) -> str:
    if size is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{format_decimal(size, format='#,##0.#')} {unit}"
        size = size / 1024  # type: ignore[assignment]
    return ""


def local_time(value: datetime | None) -> str:
    """A UTC timestamp from the database, shown in the configured time zone."""
    if value is None:
        return ""
    local = value.replace(tzinfo=UTC).astimezone(ZoneInfo(current_app.config["TZ"]))
    today = datetime.now(local.tzinfo).date()
    return local.strftime("%H:%M") if local.date() == today else local.strftime("%Y-%m-%d %H:%M")


def layout_name(key: str | None) -> str:
    layout = PRESETS.get(key or "")
    return layout.name if layout else (key or "")


def percent(done: int, total: int) -> int:
    return int(100 * done / total) if total else 0


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(duration=duration, filesize=filesize, local_time=local_time,
                                 layout_name=layout_name)
    app.jinja_env.globals.update(eta_seconds=eta_seconds, percent=percent,
                                 current_locale=lambda: str(get_locale() or "en"))
