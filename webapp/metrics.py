"""Prometheus metrics (DESIGN §4b), multiprocess-safe.

Every web, worker and scheduler process counts into its own files under `METRICS_DIR`
(`$PRESSROOM_DATA/metrics`, prometheus-client's multiprocess mode, set before the library is
first imported); `/metrics` merges them and adds what is read at scrape time: queue lengths,
the outbox backlog, workers alive, live jobs. Counters move after the transaction that made the
change commits, so a rolled-back transition is never counted.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: Seconds: a worker process whose heartbeat is older is not alive.
WORKER_STALE_S = 30
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800)

_metrics: dict[str, Any] = {}


def _setup(metrics_dir: str | None) -> None:
    """Choose the mode before prometheus_client is imported (it decides once, at import)."""
    if _metrics:
        return
    if metrics_dir and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        Path(metrics_dir).mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from prometheus_client import Counter, Histogram

    _metrics["jobs"] = Counter(
        "pressroom_jobs_total", "Jobs moved into a status, by kind", ["kind", "status"]
    )
    _metrics["duration"] = Histogram(
        "pressroom_job_duration_seconds",
        "Time from a worker's claim to the file (done jobs)",
        ["kind"],
        buckets=BUCKETS,
    )
    _metrics["mails"] = Counter(
        "pressroom_mails_total", "Mail attempts by result (sent, retried, failed)", ["result"]
    )


def multiprocess() -> bool:
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ


def _on_transition(
    name: str,
    *,
    session: Session,
    kind: str,
    new: str,
    parent_id: str | None = None,
    started_at: Any = None,
    **_: Any,
) -> None:
    if parent_id is not None or not _metrics:
        return
    from webapp.db import after_commit
    from webapp.models import utcnow

    duration = (utcnow() - started_at).total_seconds() if name == "finish" and started_at else None

    def count() -> None:
        try:
            _metrics["jobs"].labels(kind, new).inc()
            if duration is not None:
                _metrics["duration"].labels(kind).observe(max(duration, 0.0))
        except OSError as exc:  # the metrics folder went away: a job never fails for a count
            log.warning("metrics not counted (%s)", exc)

    after_commit(session, count)


def mail_result(result: str) -> None:
    """`sent`, `retried` or `failed` (webapp/jobs/outbox.py, for mail items)."""
    if _metrics:
        try:
            _metrics["mails"].labels(result).inc()
        except OSError as exc:
            log.warning("metrics not counted (%s)", exc)


class LiveCollector:
    """The gauges read at scrape time: Redis queues and heartbeats, the outbox, live jobs."""

    def collect(self) -> Iterator[Any]:
        import sqlalchemy as sa
        from prometheus_client.core import GaugeMetricFamily

        from webapp.extensions import db
        from webapp.models import JOB_IS_LIVE, LIVE_STATUSES, Job, OutboxItem

        queues = GaugeMetricFamily(
            "pressroom_queue_length",
            "Messages waiting in a queue (delayed ones included)",
            labels=["queue"],
        )
        for queue, length in queue_lengths().items():
            queues.add_metric([queue], length)
        yield queues
        yield GaugeMetricFamily(
            "pressroom_outbox_pending",
            "Outbox items (mails) not done yet",
            value=db.session.scalar(
                sa.select(sa.func.count(OutboxItem.id)).where(OutboxItem.status == "pending")
            )
            or 0,
        )
        yield GaugeMetricFamily(
            "pressroom_workers_alive",
            "Dramatiq worker processes with a fresh heartbeat",
            value=workers_alive(),
        )
        live = GaugeMetricFamily("pressroom_jobs_live", "Jobs queued or running", labels=["status"])
        counts = dict(
            db.session.execute(
                sa.select(Job.status, sa.func.count(Job.id))
                .where(JOB_IS_LIVE, Job.parent_id.is_(None))
                .group_by(Job.status)
            ).all()
        )
        for status in LIVE_STATUSES:
            live.add_metric([status], counts.get(status, 0))
        yield live


def redis_client() -> Any | None:
    """The broker's Redis client (None with the stub broker of unit tests)."""
    from dramatiq.brokers.stub import StubBroker

    broker = current_app.extensions["pressroom.broker"]
    return None if isinstance(broker, StubBroker) else broker.client


def queue_lengths() -> dict[str, int]:
    """Each queue's waiting messages (Dramatiq keeps `<ns>:<queue>` and its delay queue)."""
    from webapp.jobs.queues import QUEUES

    client = redis_client()
    lengths = dict.fromkeys(QUEUES, 0)
    if client is None:
        broker = current_app.extensions["pressroom.broker"]
        return {q: broker.queues[q].qsize() if q in broker.queues else 0 for q in QUEUES}
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in QUEUES:
                pipe.llen(f"pressroom:{queue}")
                pipe.llen(f"pressroom:{queue}.DQ")
            values = pipe.execute()
    except Exception:
        return {}
    for i, queue in enumerate(QUEUES):
        lengths[queue] = int(values[2 * i]) + int(values[2 * i + 1])
    return lengths


def workers() -> list[tuple[str, float]]:
    """(worker "host:pid", seconds since its heartbeat) of the worker processes alive
    (workers/middleware.py WorkerHeartbeat beats every 10 s)."""
    client = redis_client()
    if client is None:
        return []
    now = time.time()
    try:
        beats = client.zrangebyscore(
            "pressroom:workers", now - WORKER_STALE_S, "+inf", withscores=True
        )
    except Exception:
        return []
    return [(name.decode(), now - score) for name, score in beats]


def workers_alive() -> int:
    return len(workers())


def exposition() -> tuple[bytes, str]:
    """The text format: every process's counters merged, plus the live gauges."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client import multiprocess as mp

    if multiprocess():
        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        for name in ("jobs", "duration", "mails"):
            registry.register(_metrics[name])
    registry.register(LiveCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


def init_app(app: Flask) -> None:
    from webapp.jobs.transitions import job_changed

    _setup(app.config.get("METRICS_DIR"))
    job_changed.connect(_on_transition, weak=False)
