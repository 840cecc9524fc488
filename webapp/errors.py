"""Error answers: JSON everywhere under /api/, a page (or a toast for htmx) elsewhere."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from webapp.jobs import JobError


def api_error(status: int, code: str, message: str, **extra: Any) -> Any:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update(extra)
    response = jsonify({"error": body})
    response.status_code = status
    return response


def _code_for(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_")


def init_app(app: Flask) -> None:
    @app.errorhandler(JobError)
    def job_error(exc: JobError) -> Any:
        if request.path.startswith("/api/"):
            extra = {"field": exc.field} if exc.field else {}
            return api_error(exc.status, exc.code, exc.message, **extra)
        return render_template("errors/error.html", status=exc.status, message=exc.message), exc.status

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Any:
        if request.path.startswith("/api/"):
            return api_error(400, "csrf_failed", exc.description or "CSRF check failed.")
        if not current_user.is_authenticated and request.endpoint != "auth.login":
            # The session ended (logged out in another tab …) and took its CSRF token along:
            # that is a login problem, so answer like login_required (401 + HX-Redirect for htmx).
            from webapp.auth import unauthorized

            return unauthorized()
        message = _("The form expired or was sent from another page. Reload the page and try again.")
        return render_template("errors/error.html", status=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if request.path.startswith("/api/"):
            messages = {
                404: "No such resource.",
                405: f"Method {request.method} is not allowed here.",
                413: "The request body is too large.",
            }
            response = api_error(status, _code_for(exc), messages.get(status, exc.description or ""))
            if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
                response.headers["Allow"] = ", ".join(exc.valid_methods)  # required with a 405
            return response
        return render_template("errors/error.html", status=status,
                               message=exc.description), status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if request.path.startswith("/api/"):
            return api_error(500, "internal_error", "Something went wrong on our side; try again.")
        message = _("Something went wrong on our side. Try again; if it keeps happening, tell an administrator.")
        return render_template("errors/error.html", status=500, message=message), 500
