"""The broker the web side sends with: Redis (socket timeouts) or, in unit tests, a stub."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import default_middleware
from flask import Flask

from webapp.jobs.queues import QUEUES


def build_broker(config: dict[str, Any]) -> dramatiq.Broker:
    """A Redis broker (socket timeouts, so a submit still answers while Redis is down) or a stub."""
    if config["BROKER"] == "stub":
        broker: dramatiq.Broker = StubBroker()
        broker.emit_after("process_boot")
        for queue in QUEUES:
            broker.declare_queue(queue)
        return broker
    return RedisBroker(
        url=config["REDIS_URL"],
        namespace="pressroom",
        middleware=[m() for m in default_middleware],
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=15,
    )


def init_app(app: Flask) -> None:
    """The web side only sends messages: it keeps its own broker and imports no actors."""
    app.extensions["pressroom.broker"] = build_broker(app.config)
