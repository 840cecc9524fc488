"""The worker's broker. Import this before any actor module: `dramatiq workers.broker:setup workers.actors`."""

from __future__ import annotations

import os
import sys

import dramatiq
from flask import Flask


def setup(app: Flask | None = None) -> dramatiq.Broker:
    """Worker side: one app per process, a context per message, actors bound to this broker."""
    from webapp import create_app
    from webapp.pdf.labels import warm as warm_renderer
    from workers.middleware import AppContextMiddleware, PausedQueues, WorkerHeartbeat

    if app is None:  # a worker process (`dramatiq workers.broker:setup`), not a test's app
        app = create_app()
        lower_priority(app.config["WORKER_NICE"])
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


def lower_priority(niceness: int) -> int:
    """Run this process at `niceness` at least (never raised: 0 keeps it as started); → the
    niceness it runs at. Workers render in bursts of pure CPU; on a machine that also serves
    the web, pages and status polls would otherwise wait behind them (docs/benchmarks.md:
    the load test). On a machine of their own it changes nothing: nice only orders waiters.

    Linux with autogroups (most desktop and many server kernels) shares the CPU between
    sessions first and applies a process's nice only within its session: when the worker
    command has a session of its own (`pressroom run`, the tests and benchmarks start every
    process that way) the session's own niceness is lowered too, which touches no other
    process. In a session shared with the web (a plain shell) the process nice alone works."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness > current:
        os.setpriority(os.PRIO_PROCESS, 0, min(niceness, 19))
    if niceness > 0 and os.getsid(0) == os.getppid():  # Dramatiq's master leads our session
        try:
            with open("/proc/self/autogroup", "w") as group:
                group.write(str(min(niceness, 19)))
        except OSError:  # no autogroups here (or not Linux): the process nice is what counts
            pass
    return os.getpriority(os.PRIO_PROCESS, 0)
