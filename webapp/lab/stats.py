"""The lab's statistics for one day or ISO week: a few aggregate queries, and a one-page PDF.

Timestamps in the database are naive UTC (`models.utcnow`), while a report counts for the day its
`finalised_at` falls on in the lab's zone: the period's local midnights are turned into UTC
bounds, so every filter is a plain range on the column and the SQL is the same on SQLite and
PostgreSQL (no time-zone functions, which the two do not share). `received_on` is already the
local day. The PDF is pure rendering: the caller wraps it in `force_locale(...)`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from babel.dates import format_interval
from flask_babel import format_date, format_decimal, format_percent, get_locale
from flask_babel import gettext as _
from fpdf import FPDF
from sqlalchemy.orm import Session, scoped_session

from webapp.lab.pdfs import (
    BLACK,
    BODY_PT,
    BOLD_VALUE,
    GREY,
    HEADING_PT,
    LABEL_PT,
    PT,
    RULE,
    SHADE,
    SMALL_PT,
    TITLE_PT,
    LabDocument,
    _font,
    _line,
    _table_style,
)
from webapp.models import AnalysisType, Protocol, Report
from webapp.templating import LAB_LABELS

AnySession = Session | scoped_session[Session]

DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
WEEK = re.compile(r"(\d{4})-W(\d{2})")


@dataclass(frozen=True)
class Period:
    kind: str  # "day" or "week"
    start: date  # first day
    end: date  # last day (inclusive)
    label: str  # "2026-12-01" or "2026-W49"

    @classmethod
    def day(cls, day: date) -> Period:
        return cls("day", day, day, day.isoformat())

    @classmethod
    def week(cls, day: date) -> Period:
        """The ISO week (Monday to Sunday) that `day` falls in."""
        year, week, weekday = day.isocalendar()
        start = day - timedelta(days=weekday - 1)
        return cls("week", start, start + timedelta(days=6), f"{year}-W{week:02d}")

    @classmethod
    def parse(cls, text: str) -> Period:
        """ "2026-12-01" → that day; "2026-W49" → that ISO week; anything else: ValueError."""
        if match := DAY.fullmatch(text):
            try:
                return cls.day(date(*map(int, match.groups())))
            except ValueError as error:
                raise ValueError(f"{text!r} is not a date: {error}") from None
        if match := WEEK.fullmatch(text):
            year, week = map(int, match.groups())
            try:
                return cls.week(date.fromisocalendar(year, week, 1))
            except ValueError:
                weeks = date(max(year, 1), 12, 28).isocalendar().week  # 28 Dec: always the last
                raise ValueError(
                    f"{text!r} is not a week: {year} has weeks 01 to {weeks}"
                ) from None
        raise ValueError(
            f"{text!r} is not a period: write a day as YYYY-MM-DD or an ISO week as YYYY-Www "
            "(e.g. 2026-12-01, 2026-W49)"
        )

    def previous(self) -> Period:
        """The day or ISO week before this one."""
        if self.kind == "day":
            return Period.day(self.start - timedelta(days=1))
        return Period.week(self.start - timedelta(days=7))

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]


@dataclass(frozen=True)
class Stats:
    period: Period
    received: int  # protocols received in the period
    by_species: tuple[tuple[str, int], ...]  # count descending, then name
    by_analysis: tuple[tuple[str, int], ...]  # every analysis type, in AnalysisType's order
    finalised: int  # reports finalised in the period (the local day of finalised_at)
    turnaround_days: tuple[float, float, float] | None  # (median, p90, max); None if none
    per_day: tuple[tuple[date, int, int], ...]  # each day: (day, received, finalised)


def compute(session: AnySession, period: Period, tz: str) -> Stats:
    """The period's figures from three aggregate queries; only counts and ≤ 5 values come back."""
    days = period.days
    zone = ZoneInfo(tz)
    # Local midnights in naive UTC: bounds[i] <= finalised_at < bounds[i + 1] is day i. DST
    # days are 23 or 25 hours long, which zoneinfo accounts for.
    bounds = [
        datetime.combine(day, time(), zone).astimezone(UTC).replace(tzinfo=None)
        for day in [*days, period.end + timedelta(days=1)]
    ]
    in_period = Report.finalised_at >= bounds[0], Report.finalised_at < bounds[-1]

    received: Counter[date | None] = Counter()  # received_on is never None here
    species: Counter[str] = Counter()
    analyses: Counter[str] = Counter({kind.value: 0 for kind in AnalysisType})
    rows = session.execute(
        sa.select(Protocol.received_on, Protocol.species, Protocol.analysis_type, sa.func.count())
        .where(Protocol.received_on.between(period.start, period.end))
        .group_by(Protocol.received_on, Protocol.species, Protocol.analysis_type)
    )
    for day, name, analysis, count in rows:
        received[day] += count
        species[name] += count
        analyses[analysis] += count

    per_day_finalised = [  # count() skips the NULL a case without a match gives
        sa.func.count(sa.case((sa.and_(Report.finalised_at >= lo, Report.finalised_at < hi), 1)))
        for lo, hi in pairwise(bounds)
    ]
    finalised_row = session.execute(
        sa.select(sa.func.count(Protocol.received_at), *per_day_finalised)
        .select_from(Report)
        .join(Protocol, Protocol.id == Report.protocol_id)
        .where(*in_period)
    ).one()
    timed, finalised = finalised_row[0], [int(n) for n in finalised_row[1:]]

    return Stats(
        period=period,
        received=sum(received.values()),
        by_species=tuple(sorted(species.items(), key=lambda item: (-item[1], item[0]))),
        by_analysis=tuple(analyses.items()),
        finalised=sum(finalised),
        turnaround_days=_turnaround(session, in_period, timed),
        per_day=tuple(zip(days, (received[d] for d in days), finalised, strict=True)),
    )


def _turnaround(
    session: AnySession, in_period: tuple[Any, ...], count: int
) -> tuple[float, float, float] | None:
    """(median, p90, max) in days, interpolated between ranks as numpy's default ("linear")
    does; the database ranks the values and sends back only the (at most five) ranks needed."""
    if not count:
        return None
    quantiles = (Fraction(1, 2), Fraction(9, 10), Fraction(1))
    wanted = {f(q * (count - 1)) for q in quantiles for f in (math.floor, math.ceil)}
    days = _days_between(session, Protocol.received_at, Report.finalised_at)
    ranked = (
        sa.select(days.label("days"), (sa.func.row_number().over(order_by=days) - 1).label("rank"))
        .select_from(Report)
        .join(Protocol, Protocol.id == Report.protocol_id)
        .where(*in_period, Protocol.received_at.is_not(None))
        .subquery()
    )
    rows = session.execute(
        sa.select(ranked.c.rank, ranked.c.days).where(ranked.c.rank.in_(sorted(wanted)))
    )
    values = {int(rank): float(value) for rank, value in rows}

    def quantile(q: Fraction) -> float:
        position = q * (count - 1)
        low, high = values[math.floor(position)], values[math.ceil(position)]
        return round(low + float(position - math.floor(position)) * (high - low), 6)

    median, p90, longest = (quantile(q) for q in quantiles)
    return median, p90, longest


def _days_between(session: AnySession, start: Any, end: Any) -> Any:
    """`end - start` in days (a float) on the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.extract("epoch", end - start) / 86400.0
    return sa.func.julianday(end) - sa.func.julianday(start)


def data_version(session: AnySession, period: Period) -> str:
    """What the figures are made of, cheaply: counts and latest changes of the period's protocols
    and reports. The reports' window is widened to every zone's day (UTC-12 to UTC+14), since no
    zone is given: a report just outside the period may change it for nothing, none is missed."""
    start = datetime.combine(period.start, time())
    lo, hi = start - timedelta(hours=14), start + timedelta(days=len(period.days), hours=12)
    protocols = session.execute(
        sa.select(sa.func.count(), sa.func.max(Protocol.updated_at)).where(
            Protocol.received_on.between(period.start, period.end)
        )
    ).one()
    reports = session.execute(  # the protocols too: a corrected received_at moves the turnaround
        sa.select(sa.func.count(), sa.func.max(Report.updated_at), sa.func.max(Protocol.updated_at))
        .select_from(Report)
        .join(Protocol, Protocol.id == Report.protocol_id)
        .where(Report.finalised_at >= lo, Report.finalised_at < hi)
    ).one()
    p_count, p_changed = protocols
    r_count, r_changed, rp_changed = reports
    return (
        f"{period.label} protocols={p_count}@{_stamp(p_changed)} "
        f"reports={r_count}@{_stamp(r_changed)},{_stamp(rp_changed)}"
    )


def _stamp(value: datetime | None) -> str:
    return value.isoformat() if value else "-"


# -- the PDF -----------------------------------------------------------------------------------

GREEN = (31, 92, 58)  # received: solid dark green, near black in grey print
PALE, HATCH = (222, 222, 222), (110, 110, 110)  # finalised: light grey with dark hatching
AXIS = (120, 120, 120)
CHART_H = 62.0  # mm, the week chart's plot area
FIGURE_PT = 17.0
CHART_SPECIES = 20  # at most this many bars in the day's chart by species


def render_stats(
    stats: Stats, out: Path, *, lab_name: str, lab_address: str, generated: datetime
) -> int:
    """Write the statistics PDF to `out`; → pages. Same stats and `generated`, same bytes
    (a naive `generated` is UTC, as every timestamp in the database)."""
    period = stats.period
    reference = _("Statistics %(period)s", period=period.label)
    when = _(
        "generated %(date)s, %(time)s",
        date=format_date(generated.date(), "medium"),
        time=f"{generated:%H:%M}",
    )
    pdf = LabDocument(lab_name, lab_address, reference, f"{reference} · {when}")
    if period.kind == "day":
        title = _("Daily statistics — %(date)s", date=format_date(period.start, "long"))
        subtitle = format_date(period.start, "EEEE")
    else:
        year, week, _weekday = period.start.isocalendar()
        title = _("Weekly statistics — week %(week)s, %(year)s", week=week, year=year)
        subtitle = format_interval(period.start, period.end, "yMMMMd", locale=get_locale())
    pdf.set_title(title)
    pdf.add_page()
    _font(pdf, "B", TITLE_PT)
    pdf.multi_cell(0, _line(TITLE_PT), title, align="L", new_x="LMARGIN")
    _font(pdf, "", BODY_PT, GREY)
    pdf.multi_cell(0, _line(BODY_PT), subtitle, align="L", new_x="LMARGIN")
    pdf.ln(5)
    _figures(pdf, stats)

    if period.kind == "week" and (stats.received or stats.finalised):
        _chart_heading(pdf, _("Received and finalised per day"), CHART_H + 16, two=True)
        _week_chart(pdf, stats.per_day)
    elif period.kind == "day" and stats.received:
        bars = _species_bars(stats)
        _chart_heading(pdf, _("Received by species"), _row_height(bars) * len(bars) + 8, two=False)
        _species_chart(pdf, bars)
    if stats.received:
        _tables(pdf, stats)
    else:
        pdf.ln(2)
        _font(pdf, "", BODY_PT, GREY)
        text = _("No protocols were received in this period.")
        pdf.multi_cell(0, _line(BODY_PT), text, align="L", new_x="LMARGIN")

    pdf.set_creation_date(generated if generated.tzinfo else generated.replace(tzinfo=UTC))
    pdf.output(str(out))
    return pdf.pages_count


def _figures(pdf: FPDF, stats: Stats) -> None:
    """The summary: five shaded tiles, a small label above a big number (and its unit)."""
    days = [
        format_decimal(value, "0.0") if value is not None else None
        for value in stats.turnaround_days or (None, None, None)
    ]
    figures = (
        (_("Received"), str(stats.received), None),
        (_("Finalised"), str(stats.finalised), None),
        (_("Median turnaround"), days[0], _("days")),
        (_("90th percentile turnaround"), days[1], _("days")),
        (_("Longest turnaround"), days[2], _("days")),
    )
    gap, height, top = 3.0, 19.0, pdf.y
    width = (pdf.epw - gap * (len(figures) - 1)) / len(figures)
    for i, (label, value, unit) in enumerate(figures):
        x = pdf.l_margin + i * (width + gap)
        pdf.set_fill_color(*SHADE)
        pdf.rect(x, top, width, height, style="F")
        pdf.set_xy(x + 2.5, top + 2)
        _font(pdf, "", SMALL_PT, GREY)
        pdf.multi_cell(width - 5, _line(SMALL_PT), label, align="L")
        _font(pdf, "B", FIGURE_PT)
        pdf.text(x + 2.5, top + height - 3.5, value or "—")
        if value and unit:
            after = x + 2.5 + pdf.get_string_width(value) + 1.2
            _font(pdf, "", LABEL_PT, GREY)
            pdf.text(after, top + height - 3.5, unit)
    _default_fill(pdf)
    pdf.set_xy(pdf.l_margin, top + height + 6)


def _default_fill(pdf: FPDF) -> None:
    """Back to fpdf2's default fill colour: a table started with any other fills every cell."""
    pdf.set_fill_color(0)


def _bar(pdf: FPDF, x: float, y: float, w: float, h: float, series: int) -> None:
    """One bar (or legend swatch): series 0 solid green, series 1 grey with diagonal hatching."""
    if w <= 0 or h <= 0:
        return
    if series == 0:
        pdf.set_fill_color(*GREEN)
        pdf.rect(x, y, w, h, style="F")
        _default_fill(pdf)
        return
    pdf.set_fill_color(*PALE)
    pdf.rect(x, y, w, h, style="F")
    pdf.set_draw_color(*HATCH)  # set before the clip: its "Q" restores the state from before
    pdf.set_line_width(0.25)
    with pdf.rect_clip(x, y, w, h):
        step = 1.3
        for n in range(math.ceil((w + h) / step) + 1):
            start = x - h + n * step
            pdf.line(start, y + h, start + h, y)
    pdf.rect(x, y, w, h, style="D")
    pdf.set_draw_color(*RULE)
    pdf.set_line_width(0.2)
    _default_fill(pdf)


def _chart_heading(pdf: FPDF, text: str, keep: float, two: bool) -> None:
    """The chart's heading with its legend at the right, on a new page unless `keep` mm fit."""
    pdf.ln(4)
    if pdf.will_page_break(_line(HEADING_PT) + 2 + keep):
        pdf.add_page()
    y = pdf.y
    _font(pdf, "B", HEADING_PT)
    pdf.cell(0, _line(HEADING_PT), text)
    _font(pdf, "", LABEL_PT)
    names = (_("Received"), _("Finalised")) if two else (_("Received"),)
    x = pdf.w - pdf.r_margin
    swatch, baseline = 3.2, y + _line(HEADING_PT) / 2 + LABEL_PT * PT * 0.35
    for series in reversed(range(len(names))):
        x -= pdf.get_string_width(names[series])
        pdf.text(x, baseline, names[series])
        x -= swatch + 1.5
        _bar(pdf, x, baseline - swatch + 0.35, swatch, swatch, series)
        x -= 5
    pdf.set_xy(pdf.l_margin, y + _line(HEADING_PT) + 2)


def _scale(highest: int) -> tuple[int, int]:
    """(top, step) of a value axis: a 1-2-5 step, at most five steps up to the top."""
    magnitude = 1
    while True:
        for step in (magnitude, 2 * magnitude, 5 * magnitude):
            if math.ceil(highest / step) <= 5:
                return max(1, math.ceil(highest / step)) * step, step
        magnitude *= 10


def _centred(pdf: FPDF, cx: float, baseline: float, text: str) -> None:
    pdf.text(cx - pdf.get_string_width(text) / 2, baseline, text)


def _week_chart(pdf: FPDF, per_day: tuple[tuple[date, int, int], ...]) -> None:
    """A bar pair per day, received beside finalised, on a value axis with gridlines."""
    axis_w = 8.0
    x0, width = pdf.l_margin + axis_w, pdf.epw - axis_w
    top = pdf.y + 5  # room for a value label above a bar that reaches the top gridline
    bottom = top + CHART_H
    highest, step = _scale(max(max(r, f) for _d, r, f in per_day))
    _font(pdf, "", SMALL_PT, GREY)
    pdf.set_draw_color(*RULE)
    for value in range(0, highest + 1, step):
        y = bottom - CHART_H * value / highest
        pdf.line(x0, y, x0 + width, y)
        label = str(value)
        pdf.text(x0 - 1.8 - pdf.get_string_width(label), y + SMALL_PT * PT * 0.35, label)
    group = width / len(per_day)
    bar, gap = min(group * 0.3, 9.0), 0.8
    for i, (day, *values) in enumerate(per_day):
        cx = x0 + group * (i + 0.5)
        for series, value in enumerate(values):
            x = cx - bar - gap / 2 + series * (bar + gap)
            height = CHART_H * value / highest
            _bar(pdf, x, bottom - height, bar, height, series)
            _font(pdf, "B" if value else "", SMALL_PT, BLACK if value else GREY)
            _centred(pdf, x + bar / 2, bottom - height - 1.2, str(value))
        _font(pdf, "B", LABEL_PT)
        _centred(pdf, cx, bottom + 4.2, format_date(day, "EEE"))
        _font(pdf, "", SMALL_PT, GREY)
        _centred(pdf, cx, bottom + 7.8, format_date(day, "d MMM"))
    pdf.set_draw_color(*AXIS)
    pdf.set_line_width(0.3)
    pdf.line(x0, bottom, x0 + width, bottom)
    pdf.set_draw_color(*RULE)
    pdf.set_line_width(0.2)
    pdf.set_xy(pdf.l_margin, bottom + 11)


def _species_bars(stats: Stats) -> list[tuple[str, int]]:
    """The day chart's bars: one per species, or the first ones and one for all the others
    (so the chart stays on its page; the table below lists every species)."""
    if len(stats.by_species) <= CHART_SPECIES:
        return list(stats.by_species)
    shown, rest = stats.by_species[: CHART_SPECIES - 1], stats.by_species[CHART_SPECIES - 1 :]
    other = _("Other (%(count)s species)", count=len(rest))
    return [*shown, (other, sum(count for _name, count in rest))]


def _row_height(bars: Sequence[object]) -> float:
    return 7.0 if len(bars) <= 10 else max(4.2, 70 / len(bars))


def _fit(pdf: FPDF, text: str, width: float) -> str:
    """`text`, cut with an ellipsis to fit `width` mm in the current font."""
    if pdf.get_string_width(text) <= width:
        return text
    while text and pdf.get_string_width(text + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _species_chart(pdf: FPDF, bars: Sequence[tuple[str, int]]) -> None:
    """Horizontal bars of the day's protocols by species, on a value axis with gridlines."""
    rows, row_h = len(bars), _row_height(bars)
    name_w = 40.0
    x0, width = pdf.l_margin + name_w, pdf.epw - name_w - 8  # room for the last value label
    top = pdf.y + 1
    bottom = top + rows * row_h
    highest, step = _scale(max(count for _name, count in bars))
    _font(pdf, "", SMALL_PT, GREY)
    pdf.set_draw_color(*RULE)
    for value in range(0, highest + 1, step):
        x = x0 + width * value / highest
        pdf.line(x, top - 1, x, bottom)
        _centred(pdf, x, bottom + 3.8, str(value))
    bar_h = row_h * 0.62
    for i, (name, count) in enumerate(bars):
        y = top + i * row_h + (row_h - bar_h) / 2
        baseline = y + bar_h / 2 + LABEL_PT * PT * 0.35
        length = width * count / highest
        _bar(pdf, x0, y, length, bar_h, 0)
        _font(pdf, "", LABEL_PT)
        label = _fit(pdf, name, name_w - 3)
        pdf.text(x0 - 2 - pdf.get_string_width(label), baseline, label)
        _font(pdf, "B", SMALL_PT)
        pdf.text(x0 + length + 1.5, baseline, str(count))
    pdf.set_draw_color(*AXIS)
    pdf.set_line_width(0.3)
    pdf.line(x0, top - 1, x0, bottom)
    pdf.set_draw_color(*RULE)
    pdf.set_line_width(0.2)
    pdf.set_xy(pdf.l_margin, bottom + 7)


def _tables(pdf: FPDF, stats: Stats) -> None:
    """By species (left) beside by analysis type (right); the species table may go on over
    pages, so the short one is drawn first and the two headings are kept with a few rows."""
    gap = 8.0
    left_w = pdf.epw * 0.52
    right_x, right_w = pdf.l_margin + left_w + gap, pdf.epw - left_w - gap
    pdf.ln(4)
    if pdf.will_page_break(_line(HEADING_PT) + 2 + 34):
        pdf.add_page()
    top = pdf.y
    _font(pdf, "B", HEADING_PT)
    pdf.cell(left_w, _line(HEADING_PT), _("By species"))
    pdf.set_x(right_x)
    pdf.cell(right_w, _line(HEADING_PT), _("By analysis type"))
    rows_top, page = top + _line(HEADING_PT) + 2, pdf.page
    analyses = [(_(LAB_LABELS[n]) if n in LAB_LABELS else n, c) for n, c in stats.by_analysis]
    pdf.set_xy(right_x, rows_top)
    _count_table(pdf, right_w, _("Analysis"), analyses, stats.received, (3.2, 2, 1.6))
    right_end = pdf.y
    pdf.set_xy(pdf.l_margin, rows_top)
    _count_table(pdf, left_w, _("Species"), stats.by_species, stats.received)
    if pdf.page == page:
        pdf.set_y(max(pdf.y, right_end))


def _count_table(
    pdf: FPDF,
    width: float,
    head: str,
    rows: Sequence[tuple[str, int]],
    total: int,
    widths: tuple[float, float, float] = (5, 2, 2),
) -> None:
    """Name, count and share of the total, and a bold total row."""
    style = _table_style(pdf, widths, ("LEFT", "RIGHT", "RIGHT"))
    with pdf.table(width=width, align="L", **style) as table:
        table.row([head, _("Received"), _("Share")])
        for name, count in rows:
            table.row([name, str(count), format_percent(count / total, "0%")])
        last = table.row()
        for text in (_("Total"), str(total), format_percent(1, "0%")):
            last.cell(text, style=BOLD_VALUE)
