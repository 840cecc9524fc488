"""Pressroom: background PDF jobs with a reload-safe browser UI."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask

from webapp import config as config_module

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults (webapp/config.py), then the environment, then `config` (tests)."""
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(config_module.data_dir(config_module.load(config))),
    )
    app.config.from_mapping(config_module.load(config))
    Path(app.config["PRESSROOM_DATA"]).mkdir(parents=True, exist_ok=True)
    _logging(app)
    if proxies := app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]

    from webapp.extensions import babel, csrf, db, htmx, login_manager, migrate
    from webapp.i18n import select_locale

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    babel.init_app(app, locale_selector=select_locale)

    from webapp import auth, broker, cli, mail, metrics, schedules, templating, views
    from webapp import db as db_module
    from webapp.jobs import hooks

    db_module.init_app(app)
    broker.init_app(app)
    mail.init_app(app)
    schedules.parse(app.config.get("SCHEDULES"))  # a bad entry stops the service, saying which
    hooks.init_app(app)
    metrics.init_app(app)
    auth.init_app(app)
    views.init_app(app)
    cli.init_app(app)
    templating.init_app(app)
    return app


def _logging(app: Flask) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
        )
    # Chatty at INFO on every start; their warnings still show.
    for name in ("alembic.runtime.plugins", "alembic.runtime.migration", "pikepdf._core"):
        logging.getLogger(name).setLevel(logging.WARNING)
