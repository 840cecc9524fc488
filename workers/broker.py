"""The broker. Import this before any actor module: `dramatiq workers.broker:setup workers.actors`."""

from __future__ import annotations

import sys
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import default_middleware
from flask import Flask

from webapp.jobs.engine import QUEUES


def build_broker(config: dict[str, Any]) -> dramatiq.Broker:
    """A Redis broker (socket timeouts, so a submit still answers while Redis is down) or a stub."""
    if config["BROKER"] == "stub":
        broker: dramatiq.Broker = StubBroker()
        broker.emit_after("process_boot")
        for queue in QUEUES:
            broker.declare_queue(queue)
        return broker
    return RedisBroker(url=config["REDIS_URL"], namespace="pressroom",
                       middleware=[m() for m in default_middleware],
                       socket_timeout=5, socket_connect_timeout=2, health_check_interval=15)


def init_app(app: Flask) -> None:
    """The web side only sends messages: it keeps its own broker and imports no actors."""
    app.extensions["pressroom.broker"] = build_broker(app.config)


def setup(app: Flask | None = None) -> dramatiq.Broker:
    """Worker side: one app per process, a context per message, actors bound to this broker."""
    from webapp import create_app
    from webapp.pdf.labels import warm as warm_renderer
    from workers.middleware import AppContextMiddleware

    app = app or create_app()
    # Font instances are made once per machine (~15 s the first time) and loaded once per
    # process: at worker boot, so the first job does not pay for it.
    warm_renderer()
    broker = app.extensions["pressroom.broker"]
    if not any(isinstance(m, AppContextMiddleware) for m in broker.middleware):
        broker.add_middleware(AppContextMiddleware(app))
    dramatiq.set_broker(broker)
    actors = sys.modules.get("workers.actors")
    if actors is not None:  # imported earlier (tests): bind its actors to this broker
        for actor in actors.ALL:
            actor.broker = broker
            broker.declare_actor(actor)
    return broker
