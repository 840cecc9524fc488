"""The label file name `oppotpartijen_{date:%gW%V-%u}.pdf` (DESIGN §1): ISO year, ISO week and
weekday of the job's creation date in the configured time zone (TZ, default Europe/Amsterdam)."""

from __future__ import annotations

import importlib
import re
from datetime import datetime

import pytest

from tests.conftest import add_user
from webapp import documents, jobs
from webapp.models import Job


def name_for(created_utc: str) -> str:
    kind = documents.get("potting_lot_labels")
    return kind.file_name(Job(created_at=datetime.fromisoformat(created_utc)))


class TestIsoWeekName:
    """Around ISO year boundaries the ISO year differs from the calendar year."""

    @pytest.mark.parametrize(
        "created_utc, expected",
        [
            ("2026-11-23 08:00", "oppotpartijen_26W48-1.pdf"),  # DESIGN's own example
            ("2026-01-01 12:00", "oppotpartijen_26W01-4.pdf"),  # Thursday: week 1 of 2026
            ("2027-01-01 12:00", "oppotpartijen_26W53-5.pdf"),  # Friday: still week 53 of 2026
            ("2024-12-30 12:00", "oppotpartijen_25W01-1.pdf"),  # Monday: already week 1 of 2025
            ("2021-01-03 12:00", "oppotpartijen_20W53-7.pdf"),  # Sunday: week 53 of 2020
            ("2026-03-29 00:30", "oppotpartijen_26W13-7.pdf"),  # the night summer time starts
        ],
    )
    def test_the_name_uses_iso_year_week_and_weekday(self, ctx, created_utc, expected):
        assert name_for(created_utc) == expected

    @pytest.mark.parametrize(
        "created_utc, expected",
        [
            ("2026-11-29 23:30", "oppotpartijen_26W49-1.pdf"),  # Sunday in UTC, Monday 00:30 CET
            ("2026-06-28 22:30", "oppotpartijen_26W27-1.pdf"),  # Sunday in UTC, Monday 00:30 CEST
            ("2026-12-31 23:30", "oppotpartijen_26W53-5.pdf"),  # 2027-01-01 00:30 in Amsterdam
            ("2020-12-31 23:30", "oppotpartijen_20W53-5.pdf"),
        ],
    )
    def test_the_date_is_taken_in_amsterdam_not_in_utc(self, ctx, created_utc, expected):
        assert name_for(created_utc) == expected

    def test_amsterdam_is_the_default_time_zone(self, make_app, monkeypatch):
        monkeypatch.delenv("TZ", raising=False)
        app = make_app()
        assert app.config["TZ"] == "Europe/Amsterdam"
        with app.app_context():
            assert name_for("2026-11-29 23:30") == "oppotpartijen_26W49-1.pdf"

    @pytest.mark.parametrize(
        "tz, expected",
        [
            ("UTC", "oppotpartijen_26W48-7.pdf"),
            ("America/New_York", "oppotpartijen_26W48-7.pdf"),
            ("Asia/Tokyo", "oppotpartijen_26W49-1.pdf"),
        ],
    )
    def test_another_configured_time_zone_is_used(self, make_app, tz, expected):
        app = make_app(TZ=tz)
        with app.app_context():
            assert name_for("2026-11-29 23:30") == expected

    def test_the_tz_environment_variable_sets_the_zone(self, make_app, monkeypatch):
        monkeypatch.setenv("TZ", "UTC")
        app = make_app()
        with app.app_context():
            assert name_for("2026-11-29 23:30") == "oppotpartijen_26W48-7.pdf"


class TestSubmittedJobs:
    """A submitted job is named from its own creation time, and the API shows that name."""

    def test_a_job_submitted_late_on_sunday_utc_is_named_for_monday(self, app, monkeypatch):
        submit = importlib.import_module("webapp.jobs.submit")  # the module, not jobs.submit()
        from webapp.nursery.demo import seed_lots

        monkeypatch.setattr(submit, "utcnow", lambda: datetime(2026, 11, 29, 23, 45))
        with app.app_context():
            staff = add_user()
            seed_lots(2)
            job, _ = jobs.submit(staff, "potting_lot_labels", {"lot_ids": [1, 2]})
            assert job.created_at == datetime(2026, 11, 29, 23, 45)
            assert job.file_name == "oppotpartijen_26W49-1.pdf"

    def test_the_download_and_the_api_use_the_jobs_name(self, app, stub_worker, monkeypatch):
        from webapp.auth import create_token

        submit = importlib.import_module("webapp.jobs.submit")  # the module, not jobs.submit()
        from webapp.nursery.demo import seed_lots

        monkeypatch.setattr(submit, "utcnow", lambda: datetime(2027, 1, 1, 9, 0))
        with app.app_context():
            staff = add_user()
            seed_lots(1)
            token = create_token(staff)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        job = client.post(
            "/api/v1/jobs",
            headers=headers,
            json={"kind": "potting_lot_labels", "params": {"lot_ids": [1]}},
        ).get_json()
        stub_worker()
        body = client.get(f"/api/v1/jobs/{job['id']}", headers=headers).get_json()
        assert body["file"]["name"] == "oppotpartijen_26W53-5.pdf"
        response = client.get(
            body["file"]["url"].removeprefix(app.config["SITE_URL"]), headers=headers
        )
        assert re.search(
            r'filename="?oppotpartijen_26W53-5\.pdf"?;', response.headers["Content-Disposition"]
        )
