"""Unbound extensions; `create_app` calls their `init_app`."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import flask_babel
from flask import Flask, g
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class RequestDomain(flask_babel.Domain):
    """Flask-Babel's message domain, its catalogue found once a request instead of once a message.

    Flask-Babel's lookup reads the context three times and formats the locale's name into a
    cache key for every string: a third of a status fragment's render (eight strings in it). The
    catalogue is kept in the context's `babel_translations`, the slot Flask-Babel's own
    `refresh()` clears and `force_locale()` resets and restores, so a mail rendered in its
    reader's language inside a request still gets that language's catalogue.
    """

    def get_translations(self) -> Any:
        context = babel_context()
        found = getattr(context, "babel_translations", None)
        if found is None:
            found = super().get_translations()
            if context is not None:
                context.babel_translations = found
        return found


def babel_context() -> Any:
    """Flask-Babel's per-request namespace (`g._flask_babel`) in one read where it exists;
    Flask-Babel's own accessor (three reads of `g`) makes it, or says None outside a context."""
    try:
        return g._flask_babel
    except (AttributeError, RuntimeError):
        return flask_babel._get_current_context()


class Babel(flask_babel.Babel):
    """Flask-Babel with `RequestDomain`; the templates' strings go to it directly (Flask-Babel's
    own template callables look the domain up in the context first, one more read a string,
    for per-request domains this app does not have)."""

    @cached_property
    def domain_instance(self) -> RequestDomain:
        return RequestDomain(domain=self.domain)

    def init_app(self, app: Flask, *args: Any, **kwargs: Any) -> None:
        super().init_app(app, *args, **kwargs)

        def catalogue() -> Any:
            return self.domain_instance.get_translations()

        app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]  # the i18n extension adds it
            gettext=lambda s: catalogue().ugettext(s),
            ngettext=lambda s, p, n: catalogue().ungettext(s, p, n),
            pgettext=lambda c, s: catalogue().upgettext(c, s),
            npgettext=lambda c, s, p, n: catalogue().unpgettext(c, s, p, n),
            newstyle=True,
        )


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
htmx = Htmx()
