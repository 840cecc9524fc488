"""The worker's broker. Import this before any actor module: `dramatiq workers.broker:setup workers.actors`."""

from __future__ import annotations

import sys

import dramatiq
from flask import Flask


def setup(app: Flask | None = None) -> dramatiq.Broker:
    """Worker side: one app per process, a context per message, actors bound to this broker."""
    from webapp import create_app
    from webapp.pdf.labels import warm as warm_renderer
    from workers.middleware import AppContextMiddleware, PausedQueues, WorkerHeartbeat

    app = app or create_app()
    # Font instances are made once per machine (~15 s the first time) and loaded once per
    # process: at worker boot, so the first job does not pay for it.
    warm_renderer()
    broker = app.extensions["pressroom.broker"]
    if not any(isinstance(m, AppContextMiddleware) for m in broker.middleware):
        broker.add_middleware(PausedQueues())  # before the app context: a paused message skips it
        broker.add_middleware(AppContextMiddleware(app))
        broker.add_middleware(WorkerHeartbeat())
    dramatiq.set_broker(broker)
    actors = sys.modules.get("workers.actors")
    if actors is not None:  # imported earlier (tests): bind its actors to this broker
        for actor in actors.ALL:
            actor.broker = broker
            broker.declare_actor(actor)
    return broker
