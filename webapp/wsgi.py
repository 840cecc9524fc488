"""The web processes' entry point (`gunicorn webapp.wsgi:app`): the app, warmed up before it
takes its first request.

Without this the first request of each new web process paid for what is lazy: the label fonts
parsed for the submit's typography plan, every template compiled, the first database and Redis
connections, the S3 client's import (~1.8 s in all, against < 100 ms for the first request
after a start: docs/benchmarks.md). gunicorn loads this module in each worker process before it
accepts connections, so the warm-up is off the request path.
"""

from __future__ import annotations

import logging
import time

from flask import Flask

from webapp import create_app

log = logging.getLogger(__name__)


def warm(app: Flask) -> float:
    """Load and connect what the first requests would; → seconds it took."""
    started = time.perf_counter()
    from webapp import documents, storage
    from webapp.pdf import labels

    documents.names()  # the kinds' registry (and their modules)
    labels.warm()
    for name in app.jinja_env.list_templates(extensions=["html", "svg", "txt"]):
        app.jinja_env.get_template(name)
    storage.of(app)
    # One request through every hook: routing, the database (a read and a write probe), Redis.
    answer = app.test_client().get("/healthz")
    if answer.status_code != 200:
        log.warning(
            "warm-up: /healthz answered %s: %s", answer.status_code, answer.get_data()[:300]
        )
    return time.perf_counter() - started


app = create_app()
log.info("web process warmed up in %.2f s", warm(app))
