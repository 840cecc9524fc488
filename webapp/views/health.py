"""Health check for load balancers and the supervisor."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from dramatiq.brokers.stub import StubBroker
from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from webapp import monitor
from webapp.db import write_problem
from webapp.errors import DatabaseBusy
from webapp.extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """200 when the database (reads and writes) and Redis answer, 503 otherwise; `disk` tells
    the free space of the artifacts' disk, and status "low" (still 200) when it runs low."""
    checks = {}
    try:
        db.session.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise: this page must answer
        checks["database"] = f"error: {exc.__class__.__name__}"
    finally:
        db.session.rollback()  # end the read: the write probe below uses its own connection
    if checks["database"] == "ok":
        # A database that answers reads may still refuse writes: locked, read-only, disk failed.
        problem = _write_problem_lately()
        if problem is not None:
            checks["database"] = f"error: cannot be written: {problem}"
    broker = current_app.extensions["pressroom.broker"]
    try:
        if isinstance(broker, StubBroker):  # unit tests: nothing to reach
            checks["redis"] = "ok (stub broker)"
        else:
            broker.client.ping()
            checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}"
    healthy = all(v.startswith("ok") for v in checks.values())
    disk = _disk()
    status = "error" if not healthy else "low" if disk.get("low") else "ok"
    return jsonify(status=status, checks=checks, disk=disk), 200 if healthy else 503


PROBE_EVERY_S = 2.0  # /healthz is public: a flood of it must not queue on the write lock


def _write_problem_lately() -> str | None:
    """The write probe's answer: a success is reused for PROBE_EVERY_S (per process) unless a
    write of this process failed since, so a flood of requests takes the lock once per
    interval; a problem is probed again every time (it should clear as soon as it can)."""
    now = time.monotonic()
    ok_at = current_app.extensions.get("pressroom.write_probe_ok", -PROBE_EVERY_S)
    if now - ok_at < PROBE_EVERY_S and ok_at > DatabaseBusy.last_at:
        return None
    problem = write_problem(timeout=1.0)
    if problem is None:
        current_app.extensions["pressroom.write_probe_ok"] = time.monotonic()
    return problem


def _disk() -> dict[str, Any]:
    """The artifacts' disk: free and total bytes, and `low` below DISK_LOW_MB.

    A low or even full disk keeps the answer 200 (status "low"): the web process still serves
    pages, status reads and finished files, and a job that cannot be written fails saying so
    (webapp/jobs/runner.py); taking the web out of a load balancer would stop all of that.
    Monitoring alerts on `status == "low"` (or `disk.free_bytes`), the admin page shows it."""
    try:
        space = monitor.disk_space()
    except OSError as exc:  # report, never raise
        return {"error": exc.__class__.__name__}
    return {
        "free_bytes": space.free,
        "total_bytes": space.total,
        "low_below_bytes": space.low_below,
        "low": space.low,
    }
