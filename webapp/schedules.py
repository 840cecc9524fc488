"""Schedules (DESIGN §4b): `SCHEDULES` like "stats_daily@06:00,stats_weekly@mon 06:30", times in
TZ. Each period of a schedule runs once: `tick(at)` inserts a `(schedule, period)` row — unique
in the database — and queues the period's job in the same transaction; a second scheduler (or a
tick after a restart) that finds the row makes nothing. At its first tick a schedule runs the
latest due period; after that every due period not run yet, each once, so periods missed while
the service was down run at the next tick."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from webapp.db import write_txn
from webapp.extensions import db
from webapp.models import Origin, ScheduleRun

log = logging.getLogger(__name__)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KINDS = {"stats_daily": "day", "stats_weekly": "week"}
SPEC = re.compile(r"^(?P<kind>[a-z_]+)@(?:(?P<day>[a-z]{3}) )?(?P<hh>\d{1,2}):(?P<mm>\d{2})$")
MAX_CATCH_UP = 62  # periods one tick makes for one schedule (two months of days)


class ScheduleError(ValueError):
    """A `SCHEDULES` entry we cannot run: the service says which and why."""


@dataclass(frozen=True)
class Schedule:
    name: str  # the entry as written: "stats_weekly@mon 06:30"
    kind: str
    at: time
    weekday: int | None = None  # 0 = Monday; weekly schedules only

    @property
    def unit(self) -> str:
        return KINDS[self.kind]

    def latest_due(self, now: datetime) -> str:
        """The newest period whose report is due at `now` (local): it ended and the time passed."""
        today = now.date()
        if self.unit == "day":
            day = today - timedelta(days=1 if now.time() >= self.at else 2)
            return day.isoformat()
        monday = today - timedelta(days=today.weekday())
        run_day = monday + timedelta(days=self.weekday or 0)
        due_this_week = (today, now.time()) >= (run_day, self.at)
        week_start = monday - timedelta(days=7 if due_this_week else 14)
        year, week, _ = week_start.isocalendar()
        return f"{year}-W{week:02d}"


def period_after(period: str) -> str:
    if "-W" in period:
        year, week = period.split("-W")
        start = date.fromisocalendar(int(year), int(week), 1) + timedelta(days=7)
        y, w, _ = start.isocalendar()
        return f"{y}-W{w:02d}"
    return (date.fromisoformat(period) + timedelta(days=1)).isoformat()


def parse(text: str | None) -> list[Schedule]:
    """`SCHEDULES` → schedules; empty turns them off; a bad entry is a ScheduleError."""
    schedules = []
    for entry in filter(None, (part.strip() for part in (text or "").split(","))):
        match = SPEC.match(entry.lower())
        if not match or match["kind"] not in KINDS:
            raise ScheduleError(
                f"SCHEDULES entry {entry!r}: write kind@HH:MM or kind@day HH:MM with a kind of "
                f"{', '.join(KINDS)} (e.g. stats_daily@06:00,stats_weekly@mon 06:30)"
            )
        hour, minute = int(match["hh"]), int(match["mm"])
        if hour > 23 or minute > 59:
            raise ScheduleError(f"SCHEDULES entry {entry!r}: {hour}:{minute:02d} is not a time")
        weekly = KINDS[match["kind"]] == "week"
        if weekly != bool(match["day"]) or (match["day"] and match["day"] not in WEEKDAYS):
            raise ScheduleError(
                f"SCHEDULES entry {entry!r}: weekly schedules name a day (mon … sun), daily ones none"
            )
        schedules.append(
            Schedule(
                entry,
                match["kind"],
                time(hour, minute),
                WEEKDAYS.index(match["day"]) if match["day"] else None,
            )
        )
    return schedules


def due_periods(schedule: Schedule, now: datetime, last: str | None) -> list[str]:
    latest = schedule.latest_due(now)
    if last is None:
        return [latest]
    periods: list[str] = []
    period = period_after(last)
    while period <= latest and len(periods) < MAX_CATCH_UP:  # ISO strings sort as dates do
        periods.append(period)
        period = period_after(period)
    return periods


def tick(at: datetime | None = None) -> list[tuple[str, str, str | None]]:
    """Run whatever is due at `at` (default now): → [(schedule, period, job id)] made here."""
    from webapp import jobs

    zone = ZoneInfo(current_app.config["TZ"])
    moment = at or datetime.now(UTC)
    now = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)
    made: list[tuple[str, str, str | None]] = []
    for schedule in parse(current_app.config.get("SCHEDULES")):
        last = db.session.scalar(
            sa.select(sa.func.max(ScheduleRun.period)).where(ScheduleRun.schedule == schedule.name)
        )
        db.session.commit()
        for period in due_periods(schedule, now.replace(tzinfo=None), last):
            try:
                with write_txn() as session:
                    if session.scalar(
                        sa.select(ScheduleRun.id).where(
                            ScheduleRun.schedule == schedule.name, ScheduleRun.period == period
                        )
                    ):
                        continue  # another tick got there first
                    run = ScheduleRun(schedule=schedule.name, period=period)
                    session.add(run)
                    session.flush()  # the unique key decides here (PostgreSQL: at once)
                    job, _ = jobs.enqueue(
                        session, schedule.kind, {"period": period}, origin=Origin.SCHEDULE
                    )
                    run.job_id = job.id
                    made.append((schedule.name, period, job.id))
                log.info("schedule %s: period %s queued (job %s)", schedule.name, period, job.id)
            except IntegrityError:
                db.session.rollback()
                continue
            except jobs.JobError as exc:  # e.g. the kind refused the period: recorded, not retried
                log.error("schedule %s, period %s: %s", schedule.name, period, exc.msg.english())
                with write_txn() as session:
                    session.add(ScheduleRun(schedule=schedule.name, period=period))
                made.append((schedule.name, period, None))
    return made
