"""Two schedulers at once make one report per period (DESIGN §7: a period is a unique row),
on SQLite and on PostgreSQL, with real `flask schedules tick` processes and real workers."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from tests.services import ROOT, Stack
from webapp.extensions import db
from webapp.lab.demo import seed_lab
from webapp.models import Job, ScheduleRun

pytestmark = pytest.mark.integration

STACK = {"processes": 2, "lots": 10}


@pytest.fixture(scope="module")
def records(stack: Stack) -> None:
    """Protocols for the reports to count (their documents are not queued: nothing for the
    reports to wait behind)."""
    with stack.context():
        seed_lab(40)


class TestSchedules:
    def test_two_schedulers_at_once_make_one_report_per_period(self, stack, app_ctx, records):
        env = {**stack.env, "SCHEDULES": "stats_daily@06:00,stats_weekly@mon 06:30"}
        argv = [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "webapp",
            "schedules",
            "tick",
            "--at",
            "2026-12-07T06:00:00",
        ]

        def tick(_: int) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
            )

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(tick, range(2)))
        assert [r.returncode for r in results] == [0, 0], [r.stderr[-2000:] for r in results]
        again = tick(0)  # a restart: the same moment again makes nothing
        assert again.returncode == 0 and "Nothing due." in again.stdout
        db.session.commit()
        runs = db.session.execute(sa.select(ScheduleRun.schedule, ScheduleRun.period)).all()
        assert sorted(runs) == [
            ("stats_daily@06:00", "2026-12-06"),
            ("stats_weekly@mon 06:30", "2026-W49"),
        ]
        kinds = db.session.scalars(sa.select(Job.kind).where(Job.kind.like("stats_%"))).all()
        assert sorted(kinds) == ["stats_daily", "stats_weekly"]
        for job_id in db.session.scalars(sa.select(ScheduleRun.job_id)).all():
            stack.wait_status(job_id, "done")
