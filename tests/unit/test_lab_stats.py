"""The lab's statistics: periods, the figures against hand counts (local days in Amsterdam),
the data version, and the PDF (text, charts on a page, empty periods, determinism, pictures)."""

from __future__ import annotations

import dataclasses
import re
import time as clock
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pypdfium2 as pdfium
import pytest
import sqlalchemy as sa
from flask_babel import force_locale

from tests.conftest import app_config
from webapp import create_app
from webapp.extensions import db
from webapp.lab.demo import seed_lab
from webapp.lab.stats import Period, Stats, compute, data_version, render_stats
from webapp.models import Protocol, ProtocolStatus, Report, ReportStatus, Veterinarian

TZ = "Europe/Amsterdam"  # UTC+1 in winter: local midnight is 23:00 UTC the day before
PNG_DIR = Path("/tmp/labstats")
MM = 72 / 25.4
LAB = {"lab_name": "Laboratorio de Anatomía Patológica", "lab_address": "Calle Mayor 12, Valencia"}
GENERATED = datetime(2026, 12, 7, 6, 30, tzinfo=UTC)


def local(text: str) -> datetime:
    """'2026-12-07 00:30' in Amsterdam → naive UTC, as the database keeps it."""
    moment = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(TZ))
    return moment.astimezone(UTC).replace(tzinfo=None)


# -- periods ---------------------------------------------------------------------------------


class TestPeriodParse:
    def test_a_date_is_that_day_alone(self):
        period = Period.parse("2026-12-01")
        assert period == Period("day", date(2026, 12, 1), date(2026, 12, 1), "2026-12-01")
        assert period.days == [date(2026, 12, 1)]

    def test_a_week_runs_from_monday_to_sunday(self):
        period = Period.parse("2026-W49")
        assert period == Period("week", date(2026, 11, 30), date(2026, 12, 6), "2026-W49")
        assert [day.isoweekday() for day in period.days] == [1, 2, 3, 4, 5, 6, 7]

    def test_week_1_can_start_in_the_previous_year(self):
        period = Period.parse("2026-W01")
        assert (period.start, period.end) == (date(2025, 12, 29), date(2026, 1, 4))
        assert period.label == "2026-W01"

    def test_2026_has_a_week_53_which_ends_in_2027(self):
        assert date.fromisocalendar(2026, 53, 1) == date(2026, 12, 28)  # 2026 starts on a Thursday
        period = Period.parse("2026-W53")
        assert (period.start, period.end) == (date(2026, 12, 28), date(2027, 1, 3))

    def test_a_week_53_in_a_year_of_52_weeks_says_how_many_there_are(self):
        with pytest.raises(ValueError, match="2027 has weeks 01 to 52"):
            Period.parse("2027-W53")

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("2026-W54", "2026 has weeks 01 to 53"),
            ("2026-W00", "2026 has weeks 01 to 53"),
            ("2026-13-01", "not a date: month must be in 1..12"),
            ("2026-02-30", "not a date"),
            ("yesterday", "write a day as YYYY-MM-DD or an ISO week as YYYY-Www"),
            ("2026-12-1", "not a period"),
            ("2026-W49-1", "not a period"),  # date.fromisoformat would take it as a day
            ("20261201", "not a period"),
            ("2026-w49", "not a period"),
            (" 2026-12-01", "not a period"),
            ("", "not a period"),
        ],
    )
    def test_anything_else_is_refused_with_a_clear_message(self, text, message):
        with pytest.raises(ValueError, match=message):
            Period.parse(text)


class TestPrevious:
    def test_the_day_before_crosses_the_year(self):
        assert Period.parse("2027-01-01").previous() == Period.parse("2026-12-31")

    def test_the_week_before_week_1_can_be_week_53(self):
        assert Period.parse("2027-W01").previous() == Period.parse("2026-W53")

    def test_the_week_before_week_1_of_2026_is_week_52_of_2025(self):
        assert Period.parse("2026-W01").previous() == Period.parse("2025-W52")

    def test_the_week_before_is_seven_days_earlier(self):
        period = Period.parse("2026-W49")
        assert period.previous().start == period.start - timedelta(days=7)
        assert period.previous().label == "2026-W48"


# -- the figures -------------------------------------------------------------------------------


def add_protocol(
    species: str,
    analysis: str,
    received: str | None,
    finalised: str | None = None,
) -> Protocol:
    """A protocol received at `received` (local time; None: only announced) with a report,
    FINAL at `finalised` (local time) or a draft."""
    vet = db.session.scalars(sa.select(Veterinarian)).first()
    if vet is None:
        vet = Veterinarian(name="Dra. Begoña Ibáñez", clinic="Clínica Ñandú", email="b@example.com")
    at = local(received) if received else None
    protocol = Protocol(
        veterinarian=vet,
        animal_id="Luna",
        species=species,
        analysis_type=analysis,
        status=ProtocolStatus.RECEIVED.value if at else ProtocolStatus.REGISTERED.value,
        received_on=datetime.fromisoformat(received).date() if received else None,
        received_at=at,
    )
    report = Report(protocol=protocol)
    if finalised:
        report.status, report.finalised_at = ReportStatus.FINAL.value, local(finalised)
    db.session.add_all([protocol, report])
    db.session.commit()
    return protocol


@pytest.fixture
def week_49(ctx) -> None:
    """Protocols around week 49 of 2026 (Mon 30 Nov to Sun 6 Dec), counted by hand below."""
    # received in the week
    add_protocol("Canino", "histopathology", "2026-11-30 09:00", "2026-12-02 09:00")  # 2.0 days
    add_protocol("Canino", "cytology", "2026-11-30 10:00", "2026-12-01 22:00")  # 1.5 days
    # finalised 00:30 local on Monday 7 Dec, 23:30 UTC on Sunday: not in week 49
    add_protocol("Felino", "histopathology", "2026-12-01 08:00", "2026-12-07 00:30")
    add_protocol("Felino", "histopathology", "2026-12-03 12:00")
    add_protocol("Hurón", "histopathology", "2026-12-06 18:00")
    # received before the week, finalised in it
    # 00:30 local on Monday 30 Nov, 23:30 UTC on Sunday 29: in week 49, on its Monday
    add_protocol("Conejo", "cytology", "2026-11-27 09:00", "2026-11-30 00:30")  # 2.6458 days
    add_protocol("Canino", "histopathology", "2026-11-23 09:00", "2026-12-04 09:00")  # 11.0 days
    # neither received nor finalised in the week
    add_protocol("Canino", "histopathology", "2026-12-07 09:00")
    add_protocol("Canino", "histopathology", None)


class TestCompute:
    def test_a_week_matches_the_hand_counts(self, week_49):
        stats = compute(db.session, Period.parse("2026-W49"), TZ)
        assert stats.received == 5
        assert stats.by_species == (("Canino", 2), ("Felino", 2), ("Hurón", 1))
        assert stats.by_analysis == (("cytology", 1), ("histopathology", 4))
        assert stats.finalised == 4

    def test_each_day_counts_what_was_received_and_finalised_on_its_local_date(self, week_49):
        stats = compute(db.session, Period.parse("2026-W49"), TZ)
        assert [(day.day, received, finalised) for day, received, finalised in stats.per_day] == [
            (30, 2, 1),  # the Conejo's report, finalised 00:30 local (Sunday in UTC)
            (1, 1, 1),
            (2, 0, 1),
            (3, 1, 0),
            (4, 0, 1),
            (5, 0, 0),
            (6, 1, 0),  # the Felino's report, 23:30 UTC but Monday in Amsterdam
        ]

    def test_the_zone_decides_the_day_of_a_report_finalised_around_midnight(self, week_49):
        stats = compute(db.session, Period.parse("2026-W49"), "UTC")
        per_day = [finalised for _day, _received, finalised in stats.per_day]
        assert per_day == [0, 1, 1, 0, 1, 0, 1]

    def test_the_turnaround_is_the_median_p90_and_longest_in_days(self, week_49):
        # 1.5, 2.0, 2.6458 and 11.0 days; p90 lies 0.7 of the way from the third to the fourth
        stats = compute(db.session, Period.parse("2026-W49"), TZ)
        assert stats.turnaround_days == pytest.approx((2.322917, 8.49375, 11.0), abs=1e-5)

    def test_a_day_counts_only_itself(self, week_49):
        stats = compute(db.session, Period.parse("2026-12-01"), TZ)
        assert (stats.received, stats.finalised) == (1, 1)
        assert stats.by_species == (("Felino", 1),)
        assert stats.turnaround_days == pytest.approx((1.5, 1.5, 1.5))
        assert stats.per_day == ((date(2026, 12, 1), 1, 1),)

    def test_the_day_the_clocks_go_back_has_25_hours(self, ctx):
        # 25 Oct 2026: its local midnights are 22:00 UTC (summer time) and 23:00 UTC (winter)
        add_protocol("Canino", "cytology", "2026-10-24 09:00", "2026-10-25 00:30")  # 15.5 h
        add_protocol("Canino", "cytology", "2026-10-24 09:00", "2026-10-25 23:30")  # 39.5 h
        add_protocol("Canino", "cytology", "2026-10-24 09:00", "2026-10-26 00:30")  # the next day
        stats = compute(db.session, Period.parse("2026-10-25"), TZ)
        assert stats.finalised == 2
        assert stats.turnaround_days == pytest.approx((1.145833, 1.545833, 1.645833), abs=1e-5)

    def test_an_empty_period_has_zeros_and_no_turnaround(self, ctx):
        stats = compute(db.session, Period.parse("2026-W30"), TZ)
        assert (stats.received, stats.finalised, stats.turnaround_days) == (0, 0, None)
        assert stats.by_species == ()
        assert stats.by_analysis == (("cytology", 0), ("histopathology", 0))
        assert [counts for _day, *counts in stats.per_day] == [[0, 0]] * 7

    def test_it_runs_three_aggregate_queries_whatever_the_number_of_rows(self, week_49):
        statements: list[str] = []

        def count(_conn, _cursor, statement, *_args):
            if statement.lstrip().upper().startswith("SELECT"):  # not the BEGIN webapp.db sends
                statements.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            compute(db.session, Period.parse("2026-W49"), TZ)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        assert len(statements) == 3
        assert all("count(" in s.lower() or "row_number" in s.lower() for s in statements)


class TestDataVersion:
    def test_it_stays_the_same_while_nothing_changes(self, week_49):
        period = Period.parse("2026-W49")
        assert data_version(db.session, period) == data_version(db.session, period)

    def test_it_changes_when_a_report_in_the_period_is_finalised(self, week_49):
        period = Period.parse("2026-W49")
        before = data_version(db.session, period)
        report = db.session.scalars(
            sa.select(Report).join(Protocol).where(Protocol.received_on == date(2026, 12, 3))
        ).one()
        report.status, report.finalised_at = ReportStatus.FINAL.value, local("2026-12-05 11:00")
        db.session.commit()
        assert data_version(db.session, period) != before

    def test_it_changes_when_a_protocol_of_the_period_is_corrected(self, week_49):
        period = Period.parse("2026-W49")
        before = data_version(db.session, period)
        protocol = db.session.scalars(sa.select(Protocol).where(Protocol.species == "Hurón")).one()
        protocol.species = "Hurón (Mustela furo)"
        db.session.commit()
        assert data_version(db.session, period) != before

    def test_a_report_finalised_in_another_month_leaves_it_alone(self, week_49):
        period = Period.parse("2026-W49")
        before = data_version(db.session, period)
        add_protocol("Canino", "cytology", "2026-07-01 09:00", "2026-07-03 09:00")
        assert data_version(db.session, period) == before


# -- the PDF -------------------------------------------------------------------------------------


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[None]:
    """An app context (gettext, dates) in English, no database; tests that need Spanish nest one."""
    with create_app(app_config(tmp_path / "data")).app_context(), force_locale("en"):
        yield


def week_stats(**changes: object) -> Stats:
    period = Period.parse("2026-W49")
    counts = ((16, 10), (22, 5), (16, 12), (6, 7), (9, 9), (13, 5), (16, 8))
    stats = Stats(
        period=period,
        received=98,
        by_species=(("Canino", 47), ("Felino", 35), ("Erizo africano", 10), ("Hurón", 6)),
        by_analysis=(("cytology", 16), ("histopathology", 82)),
        finalised=56,
        turnaround_days=(3.4583, 5.2917, 12.75),
        per_day=tuple((day, r, f) for day, (r, f) in zip(period.days, counts, strict=True)),
    )
    return dataclasses.replace(stats, **changes)  # type: ignore[arg-type]


def day_stats(**changes: object) -> Stats:
    period = Period.parse("2026-12-01")
    stats = Stats(
        period=period,
        received=22,
        by_species=(("Canino", 14), ("Felino", 6), ("Equino", 1), ("Hurón", 1)),
        by_analysis=(("cytology", 3), ("histopathology", 19)),
        finalised=5,
        turnaround_days=(3.08, 4.58, 4.9167),
        per_day=((period.start, 22, 5),),
    )
    return dataclasses.replace(stats, **changes)  # type: ignore[arg-type]


def empty_stats(label: str) -> Stats:
    period = Period.parse(label)
    return Stats(
        period, 0, (), (("cytology", 0), ("histopathology", 0)), 0, None,
        tuple((day, 0, 0) for day in period.days),
    )  # fmt: skip


def page_texts(path: Path) -> list[str]:
    document = pdfium.PdfDocument(str(path))
    try:
        return [page.get_textpage().get_text_range() for page in document]
    finally:
        document.close()


def save_png(path: Path, target: Path) -> None:
    document = pdfium.PdfDocument(str(path))
    try:
        image = document[0].render(scale=1.5).to_pil()
    finally:
        document.close()
    image.save(target)
    assert image.size == (round(210 * MM * 1.5), round(297 * MM * 1.5))  # A4 portrait
    assert image.convert("L").getextrema()[0] < 60  # ink, not a blank page


@pytest.mark.usefixtures("lab")
class TestRender:
    def test_a_week_prints_its_title_figures_chart_and_tables(self, tmp_path):
        out = tmp_path / "week.pdf"
        assert render_stats(week_stats(), out, **LAB, generated=GENERATED) == 1
        text = page_texts(out)[0]
        assert "Weekly statistics — week 49, 2026" in text
        for figure in ("98", "56", "3.5", "5.3", "12.8"):
            assert figure in text
        assert "Received and finalised per day" in text
        for label in ("Mon", "Sun", "30 Nov", "6 Dec", "22"):  # axis and value labels
            assert label in text
        for row in ("Erizo africano 10 10%", "Histopathology 82 84%", "Total 98 100%"):
            assert row in text
        assert "Page 1 of 1" in text
        assert "Statistics 2026-W49" in text

    def test_a_day_prints_a_chart_by_species(self, tmp_path):
        out = tmp_path / "day.pdf"
        assert render_stats(day_stats(), out, **LAB, generated=GENERATED) == 1
        text = page_texts(out)[0]
        assert "Daily statistics — December 1, 2026" in text
        assert "Received by species" in text
        assert "Received and finalised per day" not in text
        for figure in ("22", "5", "3.1", "4.6", "4.9", "Canino 14 64%", "Cytology 3 14%"):
            assert figure in text

    @pytest.mark.parametrize("label", ["2026-W30", "2026-07-20"])
    def test_an_empty_period_prints_zeros_and_says_so_instead_of_a_chart(self, tmp_path, label):
        out = tmp_path / "empty.pdf"
        assert render_stats(empty_stats(label), out, **LAB, generated=GENERATED) == 1
        text = page_texts(out)[0]
        assert "No protocols were received in this period." in text
        assert "Received\n0\nFinalised\n0" in text.replace("\r", "")
        for absent in ("per day", "Received by species", "By species", "Share"):
            assert absent not in text

    def test_a_week_with_only_finalised_reports_still_draws_the_chart(self, tmp_path):
        period = Period.parse("2026-W30")
        stats = dataclasses.replace(
            empty_stats("2026-W30"),
            finalised=2,
            turnaround_days=(4.0, 4.0, 4.0),
            per_day=tuple((day, 0, 2 if day.day == 22 else 0) for day in period.days),
        )
        out = tmp_path / "week.pdf"
        render_stats(stats, out, **LAB, generated=GENERATED)
        text = page_texts(out)[0]
        assert "Received and finalised per day" in text
        assert "No protocols were received in this period." in text

    def test_a_day_of_many_species_charts_twenty_and_lists_every_one(self, tmp_path):
        long_name = "Tortuga mediterránea de tierra (Testudo hermanni)"
        species = ((long_name, 50), *((f"Especie {n:02d}", 40 - n) for n in range(35)))
        total = sum(count for _name, count in species)
        stats = day_stats(received=total, by_species=species, by_analysis=(("cytology", total),))
        out = tmp_path / "day.pdf"
        pages = render_stats(stats, out, **LAB, generated=GENERATED)
        texts = page_texts(out)
        assert pages == len(texts) >= 2
        for number, text in enumerate(texts, start=1):
            assert f"Page {number} of {pages}" in text
        everything = "\n".join(texts)
        for name, _count in species[1:]:
            assert name in everything
        assert re.search(r"Tortuga mediterránea[^\n]*…", everything)  # shortened in the chart
        assert "Other (17 species) 238" in texts[0]  # Especie 18 to 34: 22 + 21 + … + 6

    def test_dates_and_decimals_follow_the_locale(self, tmp_path):
        out = tmp_path / "day.pdf"
        with force_locale("es"):
            render_stats(day_stats(), out, **LAB, generated=GENERATED)
        text = page_texts(out)[0]
        assert "1 de diciembre de 2026" in text
        assert "3,1" in text and "martes" in text

    def test_the_same_stats_give_the_same_bytes(self, tmp_path):
        first, second = tmp_path / "first.pdf", tmp_path / "second.pdf"
        render_stats(week_stats(), first, **LAB, generated=GENERATED)
        render_stats(week_stats(), second, **LAB, generated=GENERATED)
        assert first.read_bytes() == second.read_bytes()
        render_stats(week_stats(), second, **LAB, generated=GENERATED + timedelta(minutes=1))
        assert first.read_bytes() != second.read_bytes()

    def test_a_naive_generated_time_is_taken_as_utc(self, tmp_path):
        first, second = tmp_path / "first.pdf", tmp_path / "second.pdf"
        render_stats(day_stats(), first, **LAB, generated=GENERATED)
        render_stats(day_stats(), second, **LAB, generated=GENERATED.replace(tzinfo=None))
        assert first.read_bytes() == second.read_bytes()


def test_demo_data_renders_to_pictures(ctx):
    """Seeded demo data through compute and render, as the jobs will do it: the pictures a
    reviewer looks at (/tmp/labstats/week.png, day.png) and how long it takes."""
    PNG_DIR.mkdir(exist_ok=True)
    seed_lab(200, today=date(2026, 12, 8))
    for n, report in enumerate(db.session.scalars(sa.select(Report).order_by(Report.id))):
        if n % 3:  # two in three finalised, 20 hours to 5 days after reception
            report.status = ReportStatus.FINAL.value
            report.finalised_at = report.protocol.received_at + timedelta(hours=20 + n * 7 % 100)
    db.session.commit()
    for name, label in (("week", "2026-W49"), ("day", "2026-12-02")):
        stats = compute(db.session, Period.parse(label), TZ)
        assert stats.received and stats.finalised and stats.turnaround_days
        out = PNG_DIR / f"{name}.pdf"
        started = clock.perf_counter()
        with force_locale("en"):
            assert render_stats(stats, out, **LAB, generated=GENERATED) == 1
        assert clock.perf_counter() - started < 5
        save_png(out, PNG_DIR / f"{name}.png")
