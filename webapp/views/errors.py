"""Error answers: JSON everywhere under /api/, a page (or a toast for htmx) elsewhere."""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from webapp.auth import unauthorized
from webapp.errors import InvalidParams, JobError
from webapp.http import api_error, wants_json
from webapp.messages import N_

# What an error page says for Werkzeug's own errors, in the reader's language.
PAGE_MESSAGES: dict[int, str] = {
    400: N_("The request could not be understood. Reload the page and try again."),
    403: N_("Your account may not open this page. Ask an administrator if you need it."),
    404: N_("There is no page at this address. Check the link, or start again from the menu."),
    405: N_("This page cannot be used this way. Go back and use the page's own buttons."),
    413: N_("The file is too large to upload."),
}


def _code_for(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_")


def init_app(app: Flask) -> None:
    @app.errorhandler(JobError)
    def job_error(exc: JobError) -> Any:
        if wants_json():
            extra: dict[str, Any] = {}
            if isinstance(exc, InvalidParams) and exc.fields:
                extra["fields"] = {name: msg.english() for name, msg in exc.fields.items()}
            return api_error(exc.status, exc.api_code, exc.msg, **extra)
        return render_template(
            "errors/error.html", status=exc.status, message=exc.msg.text()
        ), exc.status

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Any:
        if wants_json():
            return api_error(400, "csrf_failed", exc.description or "CSRF check failed.")
        if not current_user.is_authenticated and request.endpoint != "auth.login":
            # The session ended (logged out in another tab …) and took its CSRF token along:
            # that is a login problem, so answer like login_required (401 + HX-Redirect for htmx).
            return unauthorized()
        message = _(
            "The form expired or was sent from another page. Reload the page and try again."
        )
        return render_template("errors/error.html", status=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if wants_json():
            messages = {
                404: "No such resource.",
                405: f"Method {request.method} is not allowed here.",
                413: "The request body is too large.",
            }
            response = api_error(
                status, _code_for(exc), messages.get(status, exc.description or "")
            )
            if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
                response.headers["Allow"] = ", ".join(exc.valid_methods)  # required with a 405
            return response
        default = type(exc).description
        if status in PAGE_MESSAGES and exc.description in (None, default):
            message = _(PAGE_MESSAGES[status])  # Werkzeug's own wording speaks to developers
        else:
            message = exc.description or ""
        return render_template("errors/error.html", status=status, message=message), status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json():
            return api_error(500, "internal_error", "Something went wrong on our side; try again.")
        message = _(
            "Something went wrong on our side. Try again; if it keeps happening, tell an administrator."
        )
        return render_template("errors/error.html", status=500, message=message), 500
