"""Potting-lot filters, shared by the table page, the print button and the API's `filter`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from webapp.messages import Msg
from webapp.models import PottingLot

FILTER_KEYS = ("q", "lot_number", "pot_size", "location", "week")
WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")


class FilterError(ValueError):
    """A filter that cannot be applied: the field it names and a message code."""

    def __init__(self, field: str, code: str, **params: Any) -> None:
        self.field = field
        self.msg = Msg(code, params)
        super().__init__(code)


def parse_week(value: str) -> tuple[date, date]:
    """'2026-W48' → (Monday, Sunday) of that ISO week."""
    match = WEEK_RE.match(value.strip())
    if not match:
        raise FilterError("week", "week_format", value=value)
    year, week = int(match[1]), int(match[2])
    try:
        monday = date.fromisocalendar(year, week, 1)
    except ValueError:
        raise FilterError("week", "week_missing", year=str(year), week=week) from None
    return monday, monday + timedelta(days=6)


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class LotFilter:
    q: str = ""
    lot_number: str = ""
    pot_size: str = ""
    location: str = ""
    week: str = ""

    @classmethod
    def from_mapping(cls, data: Any) -> LotFilter:
        """Build from request args or API JSON; unknown keys and bad values raise FilterError."""
        if not isinstance(data, dict) and not hasattr(data, "get"):
            raise FilterError("filter", "filter_object")
        unknown = sorted(set(data.keys()) - set(FILTER_KEYS))
        if unknown:
            raise FilterError(unknown[0], "filter_unknown", key=unknown[0], keys=list(FILTER_KEYS))
        values = {}
        for key in FILTER_KEYS:
            value = data.get(key)
            value = "" if value is None else value
            if not isinstance(value, str) or "\x00" in value:  # (PostgreSQL refuses NUL in text)
                raise FilterError(key, "filter_text", key=key)
            values[key] = value.strip()[:200]
        if values["week"]:
            values["week"] = values["week"].upper()  # "2026-w48" is what people type
            parse_week(values["week"])
        return cls(**values)

    def as_dict(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in FILTER_KEYS if getattr(self, key)}

    def __bool__(self) -> bool:
        return bool(self.as_dict())

    def apply(self, query: sa.Select) -> sa.Select:
        if self.q:
            like = f"%{_escape(self.q)}%"
            query = query.where(
                sa.or_(
                    PottingLot.lot_number.ilike(like, escape="\\"),
                    PottingLot.plant_name.ilike(like, escape="\\"),
                )
            )
        if self.lot_number:
            query = query.where(
                PottingLot.lot_number.ilike(f"{_escape(self.lot_number)}%", escape="\\")
            )
        if self.pot_size:
            query = query.where(PottingLot.pot_size == self.pot_size)
        if self.location:
            query = query.where(PottingLot.location == self.location)
        if self.week:
            monday, sunday = parse_week(self.week)
            query = query.where(PottingLot.potting_date.between(monday, sunday))
        return query


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def ordered(query: sa.Select) -> sa.Select:
    """The table's order, which is also the print order."""
    return query.order_by(PottingLot.lot_number)
