"""The figures of the monitoring page (`/admin`): queues, workers, running jobs, throughput and
durations per kind, failure rates, a 24-hour chart, the outbox and the disk. Each figure is an
aggregate query over an index (the last day's finished jobs, the live ones), so the page stays
fast with 100,000 jobs in the table."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app

from webapp import metrics
from webapp.extensions import db
from webapp.jobs.queues import BULK_QUEUE, QUEUE, QUEUES
from webapp.models import Artifact, Job, JobStatus, OutboxItem, utcnow


@dataclass
class KindFigures:
    kind: str
    done_day: int = 0
    failed_day: int = 0
    failed_hour: int = 0
    done_hour: int = 0
    p50_s: float | None = None
    p95_s: float | None = None

    @property
    def failure_day(self) -> float | None:
        ended = self.done_day + self.failed_day
        return self.failed_day / ended if ended else None

    @property
    def failure_hour(self) -> float | None:
        ended = self.done_hour + self.failed_hour
        return self.failed_hour / ended if ended else None


@dataclass
class Overview:
    now: datetime
    queues: list[dict[str, Any]]
    workers: list[tuple[str, float]]
    running: list[Job]
    kinds: list[KindFigures]
    hours: list[tuple[datetime, int, int]]  # (hour start, done, failed), oldest first
    outbox_pending: int
    outbox_failed: int
    artifacts_bytes: int
    disk_free: int
    disk_total: int
    totals: dict[str, int] = field(default_factory=dict)
    disk_low: bool = False  # less free than DISK_LOW_MB: the page warns

    @property
    def failure_day(self) -> float | None:
        done = sum(k.done_day for k in self.kinds)
        failed = sum(k.failed_day for k in self.kinds)
        return failed / (done + failed) if done + failed else None

    @property
    def failure_hour(self) -> float | None:
        done = sum(k.done_hour for k in self.kinds)
        failed = sum(k.failed_hour for k in self.kinds)
        return failed / (done + failed) if done + failed else None


@dataclass(frozen=True)
class DiskSpace:
    """The disk the workers write to (ARTIFACT_DIR: temp files and merges are local whatever
    the store); `low` below DISK_LOW_MB free."""

    free: int
    total: int
    low_below: int

    @property
    def low(self) -> bool:
        return self.free < self.low_below


def disk_space() -> DiskSpace:
    folder = Path(current_app.config["ARTIFACT_DIR"])
    while not folder.exists() and folder != folder.parent:  # not made yet: its nearest parent
        folder = folder.parent
    usage = shutil.disk_usage(folder)
    low = int(float(current_app.config["DISK_LOW_MB"]) * 1_000_000)
    return DiskSpace(usage.free, usage.total, low)


DURATION_SAMPLE = 500  # the newest done jobs per kind that p50/p95 are taken over


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _seconds(start: Any, end: Any) -> Any:
    """`end - start` in seconds, in SQL (SQLite or PostgreSQL)."""
    if db.engine.dialect.name == "sqlite":
        return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0
    return sa.extract("epoch", end - start)


def overview(paused: set[str]) -> Overview:
    now = utcnow()
    day, hour = now - timedelta(hours=24), now - timedelta(hours=1)
    ended = (JobStatus.DONE.value, JobStatus.FAILED.value)
    whole = Job.parent_id.is_(None)

    # One pass over the last day's finished jobs (an index-only read): counts, durations and
    # the hourly chart, instead of a query per kind and figure.
    start = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    figures: dict[str, KindFigures] = {}
    durations: dict[str, list[float]] = {}
    done_by_hour, failed_by_hour = [0] * 24, [0] * 24
    # Counted by the database over the index (kinds × states × hours: a few hundred rows).
    slot = sa.cast(sa.func.floor(_seconds(start, Job.finished_at) / 3600), sa.Integer)
    recent = sa.cast(Job.finished_at >= hour, sa.Integer)
    rows = db.session.execute(
        sa.select(Job.kind, Job.status, recent, slot, sa.func.count())
        .where(Job.finished_at >= day, Job.status.in_(ended), whole)
        .group_by(Job.kind, Job.status, recent, slot)
    ).all()
    for kind, status, in_hour, at, count in rows:
        f = figures.get(kind) or figures.setdefault(kind, KindFigures(kind))
        good = status == JobStatus.DONE
        if good:
            f.done_day += count
            f.done_hour += count if in_hour else 0
        else:
            f.failed_day += count
            f.failed_hour += count if in_hour else 0
        if at is not None and 0 <= at < 24:
            (done_by_hour if good else failed_by_hour)[at] += count
    # Durations: the newest done jobs of each kind (read backwards along the same index).
    seconds = _seconds(Job.started_at, Job.finished_at)
    for kind in figures:
        durations[kind] = [
            float(v)
            for v in db.session.scalars(
                sa.select(seconds)
                .where(
                    Job.finished_at >= day,
                    Job.status == JobStatus.DONE,
                    Job.kind == kind,
                    Job.started_at.is_not(None),
                    whole,
                )
                .order_by(Job.finished_at.desc())
                .limit(DURATION_SAMPLE)
            )
            if v is not None
        ]
    for kind, f in figures.items():
        seconds = durations.get(kind, [])
        f.p50_s, f.p95_s = percentile(seconds, 50), percentile(seconds, 95)
    hours = [(start + timedelta(hours=h), done_by_hour[h], failed_by_hour[h]) for h in range(24)]

    lengths = metrics.queue_lengths()
    # Chunks and a bulk job's documents wait in the bulk queue, whole jobs in the other.
    bulk = sa.or_(Job.parent_id.is_not(None), Job.batch_id.is_not(None))
    oldest = dict(
        db.session.execute(
            sa.select(bulk, sa.func.min(Job.created_at))
            .where(Job.status == JobStatus.QUEUED)
            .group_by(bulk)
        ).all()
    )
    queues = [
        {
            "name": queue,
            "length": lengths.get(queue),
            "oldest": oldest.get(queue == BULK_QUEUE),
            "paused": queue in paused,
            "what": "whole jobs" if queue == QUEUE else "chunks and bulk work",
        }
        for queue in QUEUES
    ]
    running = list(
        db.session.scalars(
            sa.select(Job)
            .where(Job.status == JobStatus.RUNNING, whole)
            .order_by(Job.started_at)
            .limit(50)
        )
    )
    outbox = dict(
        db.session.execute(
            sa.select(OutboxItem.status, sa.func.count()).group_by(OutboxItem.status)
        ).all()
    )
    totals = dict(
        db.session.execute(
            sa.select(Job.status, sa.func.count())
            .where(Job.status.in_((JobStatus.QUEUED.value, JobStatus.RUNNING.value)), whole)
            .group_by(Job.status)
        ).all()
    )
    stored = db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Artifact.size), 0))) or 0
    usage = disk_space()
    return Overview(
        now=now,
        queues=queues,
        workers=metrics.workers(),
        running=running,
        kinds=sorted(figures.values(), key=lambda f: f.kind),
        hours=hours,
        outbox_pending=outbox.get("pending", 0),
        outbox_failed=outbox.get("failed", 0),
        artifacts_bytes=int(stored),
        disk_free=usage.free,
        disk_total=usage.total,
        totals=totals,
        disk_low=usage.low,
    )


def chart_svg(
    hours: list[tuple[datetime, int, int]], zone: str, width: int = 720, height: int = 160
) -> str:
    """A 24-hour bar chart (done stacked under failed) as inline SVG, drawn on the server;
    hours are shown in the lab's time zone."""
    tz = ZoneInfo(zone)
    hours = [(m.replace(tzinfo=UTC).astimezone(tz), d, f) for m, d, f in hours]
    top = max((done + failed for _, done, failed in hours), default=0) or 1
    bar_w = width / len(hours)
    plot_h = height - 22
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="jobs finished per hour, last 24 hours" xmlns="http://www.w3.org/2000/svg">'
    ]
    for y in (0.5, 1.0):
        gy = plot_h - plot_h * y
        parts.append(f'<line x1="0" x2="{width}" y1="{gy:.1f}" y2="{gy:.1f}" class="grid"/>')
        parts.append(f'<text x="2" y="{gy + 11:.1f}" class="axis">{round(top * y)}</text>')
    for i, (moment, done, failed) in enumerate(hours):
        x = i * bar_w + 2
        done_h, failed_h = plot_h * done / top, plot_h * failed / top
        title = f"<title>{moment:%H}:00 — {done} done, {failed} failed</title>"
        parts.append(
            f'<g>{title}<rect x="{x:.1f}" y="{plot_h - done_h:.1f}" width="{bar_w - 4:.1f}" '
            f'height="{done_h:.1f}" class="done"/>'
            f'<rect x="{x:.1f}" y="{plot_h - done_h - failed_h:.1f}" width="{bar_w - 4:.1f}" '
            f'height="{failed_h:.1f}" class="failed"/></g>'
        )
        if i % 3 == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - 6}" class="axis">{moment:%H}h</text>')
    parts.append("</svg>")
    return "".join(parts)
