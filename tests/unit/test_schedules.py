"""Schedules (DESIGN §4b): parsing SCHEDULES, which period is due when, catching up missed
periods, and each period made once whoever ticks."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from tests.conftest import add_user, app_config
from webapp import create_app, schedules
from webapp.extensions import db
from webapp.models import Job, ScheduleRun

DAILY = schedules.parse("stats_daily@06:00")[0]
WEEKLY = schedules.parse("stats_weekly@mon 06:30")[0]


class TestParse:
    def test_the_default_and_an_empty_value(self):
        found = schedules.parse("stats_daily@06:00, stats_weekly@mon 06:30")
        assert [(s.kind, s.at.isoformat(), s.weekday) for s in found] == [
            ("stats_daily", "06:00:00", None),
            ("stats_weekly", "06:30:00", 0),
        ]
        assert schedules.parse("") == [] and schedules.parse(None) == []

    @pytest.mark.parametrize(
        "text",
        [
            "stats_daily",
            "stats_daily@25:00",
            "stats_weekly@06:30",
            "stats_daily@mon 06:00",
            "cake@06:00",
            "stats_weekly@xyz 06:30",
        ],
    )
    def test_a_bad_entry_names_itself(self, text):
        with pytest.raises(schedules.ScheduleError, match="SCHEDULES entry"):
            schedules.parse(text)

    def test_a_bad_schedules_value_stops_the_service(self, tmp_path):
        with pytest.raises(schedules.ScheduleError, match="stats_daily@6"):
            create_app(app_config(tmp_path, SCHEDULES="stats_daily@6"))


class TestDue:
    @pytest.mark.parametrize(
        ("now", "expected"),
        [
            ("2026-12-02 06:00", "2026-12-01"),
            ("2026-12-02 05:59", "2026-11-30"),
            ("2026-12-02 23:00", "2026-12-01"),
        ],
    )
    def test_a_day_is_due_the_next_day_at_its_time(self, now, expected):
        assert DAILY.latest_due(datetime.fromisoformat(now)) == expected

    @pytest.mark.parametrize(
        ("now", "expected"),
        [
            ("2026-12-07 06:30", "2026-W49"),  # Monday 7 December: week 49 has ended
            ("2026-12-07 06:29", "2026-W48"),
            ("2026-12-13 12:00", "2026-W49"),
            ("2027-01-04 07:00", "2026-W53"),  # 2026 has 53 ISO weeks
        ],
    )
    def test_a_week_is_due_on_its_day_after_it_ended(self, now, expected):
        assert WEEKLY.latest_due(datetime.fromisoformat(now)) == expected

    def test_the_first_tick_runs_the_latest_then_every_missed_period_once(self):
        now = datetime.fromisoformat("2026-12-05 07:00")
        assert schedules.due_periods(DAILY, now, None) == ["2026-12-04"]
        assert schedules.due_periods(DAILY, now, "2026-12-01") == [
            "2026-12-02",
            "2026-12-03",
            "2026-12-04",
        ]
        assert schedules.due_periods(DAILY, now, "2026-12-04") == []
        later = datetime.fromisoformat("2027-01-12 07:00")
        assert schedules.due_periods(WEEKLY, later, "2026-W51") == [
            "2026-W52",
            "2026-W53",
            "2027-W01",
        ]


class TestTick:
    def test_two_ticks_make_one_job_per_period_and_a_missed_period_runs_later(self, make_app):
        app = make_app(SCHEDULES="stats_daily@06:00")
        with app.app_context():
            add_user("admin@example.com", "pw", role="admin")
            first = schedules.tick(
                datetime.fromisoformat("2026-12-02T05:30:00+00:00")
            )  # 06:30 local
            again = schedules.tick(datetime.fromisoformat("2026-12-02T05:31:00+00:00"))
            assert [(s, p) for s, p, _ in first] == [("stats_daily@06:00", "2026-12-01")]
            assert again == []
            # Down for two days: the next tick makes both missed days, once each.
            later = schedules.tick(datetime.fromisoformat("2026-12-04T09:00:00+00:00"))
            assert [p for _, p, _ in later] == ["2026-12-02", "2026-12-03"]
            runs = db.session.scalars(
                sa.select(ScheduleRun.period).order_by(ScheduleRun.period)
            ).all()
            assert runs == ["2026-12-01", "2026-12-02", "2026-12-03"]
            kinds = db.session.scalars(sa.select(Job.kind)).all()
            assert kinds == ["stats_daily"] * 3
            origins = set(db.session.scalars(sa.select(Job.origin)))
            assert origins == {"schedule"}


class TestStatsReports:
    def test_a_scheduled_day_makes_its_pdf_and_mails_it_to_each_admin_once(self, app, stub_worker):
        import email
        from datetime import date
        from pathlib import Path

        import pypdfium2 as pdfium

        from webapp.lab.demo import seed_lab

        app.config["SCHEDULES"] = "stats_daily@06:00"
        with app.app_context():
            add_user("admin@example.com", "pw", role="admin")
            add_user("boss@example.com", "pw", role="admin")
            seed_lab(30, today=date(2026, 12, 3))
            made = schedules.tick(datetime.fromisoformat("2026-12-03T06:00:00+00:00"))
            assert [p for _, p, _ in made] == ["2026-12-02"]
        stub_worker()
        with app.app_context():
            job = db.session.get(Job, made[0][2])
            assert job.status == "done", job.error
            path = Path(app.config["ARTIFACT_DIR"]) / job.artifact.path
            text = "".join(p.get_textpage().get_text_range() for p in pdfium.PdfDocument(path))
            assert "2026" in text and job.file_name == "stats_daily_2026-12-02.pdf"
        mails = sorted(Path(app.config["OUTBOX_DIR"]).glob("stats-daily-*.eml"))
        assert len(mails) == 2
        message = email.message_from_bytes(mails[0].read_bytes())
        assert {email.message_from_bytes(p.read_bytes())["To"] for p in mails} == {
            "admin@example.com",
            "boss@example.com",
        }
        assert any(part.get_content_type() == "application/pdf" for part in message.walk())

    def test_a_period_of_the_wrong_size_is_refused(self, app):
        from webapp import jobs

        with app.app_context():
            admin = add_user("admin@example.com", "pw", role="admin")
            with pytest.raises(jobs.InvalidParams) as refused:
                jobs.submit(admin, "stats_daily", {"period": "2026-W49"})
            assert refused.value.fields["period"].code == "period_day"
            with pytest.raises(jobs.InvalidParams):
                jobs.submit(admin, "stats_weekly", {"period": "next week"})
