"""The web processes' entry point (`gunicorn webapp.wsgi:app`): the app, warmed up before it
takes its first request.

Without this the first request of each new web process paid for what is lazy: the label fonts
parsed for the submit's typography plan, every template compiled, the first database and Redis
connections, the S3 client's import (~1.8 s in all, against < 100 ms for the first request
after a start: docs/benchmarks.md). gunicorn loads this module in each worker process before it
accepts connections, so the warm-up is off the request path.

Then what the warm-up loaded (modules, templates, fonts, the mappers: ~190,000 objects) is
moved out of the garbage collector's sight (`gc.freeze`). Otherwise the collector's oldest
generation went through all of it every few thousand requests and stopped that process for
55 ms (idle) to 230 ms (under load) each time: the longest submits of a busy web node were
those pauses (docs/benchmarks.md "Garbage collector pauses and the write lock"); frozen, a
full pass takes 4-13 ms under load.
"""

from __future__ import annotations

import gc
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


def freeze() -> None:
    """What is alive now lives as long as the process: out of the collector's passes."""
    gc.collect()
    gc.freeze()


app = create_app()
log.info("web process warmed up in %.2f s", warm(app))
freeze()
