"""Blueprints, one per area, and the error answers."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from webapp.extensions import csrf
    from webapp.views import (  # noqa: F401  (lab_tables: routes on lab.bp)
        admin,
        api,
        auth,
        errors,
        health,
        jobs,
        lab,
        lab_tables,
        nursery,
        nursery_import,  # noqa: F401  (routes on nursery.bp)
    )

    csrf.exempt(api.bp)  # Bearer tokens only: no cookies, so no CSRF
    for module in (auth, jobs, nursery, lab, admin, api, health):
        app.register_blueprint(module.bp)
    app.register_blueprint(lab.public)
    app.register_blueprint(admin.probe)
    csrf.exempt(admin.probe)
    errors.init_app(app)
    from webapp.jobs.poll import PollAwareSessions

    app.session_interface = PollAwareSessions()
    from webapp.http import security_headers

    app.after_request(security_headers)
