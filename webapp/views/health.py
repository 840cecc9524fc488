"""Health check for load balancers and the supervisor."""

from __future__ import annotations

import sqlalchemy as sa
from dramatiq.brokers.stub import StubBroker
from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from webapp.extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """200 when the database and Redis answer, 503 otherwise."""
    checks = {}
    try:
        db.session.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise: this page must answer
        checks["database"] = f"error: {exc.__class__.__name__}"
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
    return jsonify(status="ok" if healthy else "error", checks=checks), 200 if healthy else 503
