"""Error answers: JSON everywhere under /api/, a page (or a toast for htmx) elsewhere."""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template, render_template_string, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestURITooLarge

from webapp.auth import unauthorized
from webapp.db import unavailable_reason
from webapp.errors import DatabaseBusy, InvalidParams, JobError, describe_unavailable
from webapp.http import api_error, is_htmx, wants_json
from webapp.messages import N_

#: The longest URL (path and query) the app reads; gunicorn's own limit is set above it
#: (workers/processes.py), so that a longer one is answered here, as JSON under /api/.
MAX_URL_LENGTH = 4096

# What an error page says for Werkzeug's own errors, in the reader's language.
PAGE_MESSAGES: dict[int, str] = {
    400: N_("The request could not be understood. Reload the page and try again."),
    403: N_("Your account may not open this page. Ask an administrator if you need it."),
    404: N_("There is no page at this address. Check the link, or start again from the menu."),
    405: N_("This page cannot be used this way. Go back and use the page's own buttons."),
    413: N_("The file is too large to upload."),
    414: N_("The address is too long. Go back and use the page's own links and filters."),
}


def _code_for(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_")


def database_unavailable(reason: str, holder: str | None = None) -> Any:
    """503 + Retry-After when a write cannot get the database: JSON under /api/, a fragment
    for htmx, a page otherwise. The page is plain HTML when even the layout cannot be drawn."""
    retry = DatabaseBusy.retry_after_s
    headers = {"Retry-After": str(retry)}
    if wants_json():
        response = api_error(
            503,
            "database_busy",
            f"The database cannot be written now ({describe_unavailable(reason, holder)}); "
            f"nothing was changed. Try again in {retry} seconds.",
        )
        response.headers.update(headers)
        return response
    message = _(
        "The service cannot save anything right now: its database is busy or unavailable. "
        "Nothing was changed. Try again in a few seconds."
    )
    if is_htmx():
        fragment = render_template_string(
            '<p class="error-message" role="alert">{{ message }}</p>', message=message
        )
        return fragment, 503, headers
    try:
        return render_template("errors/error.html", status=503, message=message), 503, headers
    except Exception:  # the layout reads the user; a database that fails that too gets this
        page = render_template_string(
            "<!doctype html><title>503</title><h1>503</h1><p>{{ message }}</p>", message=message
        )
        return page, 503, headers


def _nul_in(value: Any, path: str, depth: int = 0) -> str | None:
    """The path ("params.filter.q") of the first text with a NUL in a JSON value, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if depth > 50:  # deeper than any schema of ours: the schema refuses it
        return None
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return path or "body"
        name = key if isinstance(key, str) else None
        found = _nul_in(item, f"{path}.{name}" if path and name else (name or path), depth + 1)
        if found is not None:
            return found
    return None


def init_app(app: Flask) -> None:
    @app.before_request
    def url_length() -> None:
        # (request.full_path is decoded; its length in characters is what the app reads.)
        if len(request.full_path) > MAX_URL_LENGTH:
            raise RequestURITooLarge()

    @app.before_request
    def no_nul() -> None:
        # NUL is in no text a person types, and PostgreSQL refuses it in a text column (a 500
        # there): refused for every field of a query string, a form or a JSON body, by name.
        sources = [request.args] + ([request.form] if request.method != "GET" else [])
        for source in sources:
            for name, value in source.items(multi=True):
                if "\x00" in value:
                    raise InvalidParams.field(name[:60], "field_invalid")
        if request.is_json:
            try:
                body = request.get_json(silent=True)
            except RecursionError:
                return  # the view refuses it (400)
            where = _nul_in(body, "")
            if where is not None:  # (a job's fields are named within its params: "filter.q")
                raise InvalidParams.field(where.removeprefix("params.") or "body", "field_invalid")

    @app.errorhandler(DatabaseBusy)
    def database_busy(exc: DatabaseBusy) -> Any:
        app.logger.warning(
            "%s %s: database unavailable: %s", request.method, request.path, exc.msg.english()
        )
        return database_unavailable(exc.reason, exc.holder)

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
                414: f"The URL is too long (more than {MAX_URL_LENGTH} characters).",
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
        reason = unavailable_reason(exc)
        if reason is not None:  # SQLite's busy handler gave up, a read-only file, a failed disk
            app.logger.warning(
                "%s %s: database unavailable (%s): %s", request.method, request.path, reason, exc
            )
            return database_unavailable(reason)
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json():
            return api_error(500, "internal_error", "Something went wrong on our side; try again.")
        message = _(
            "Something went wrong on our side. Try again; if it keeps happening, tell an administrator."
        )
        return render_template("errors/error.html", status=500, message=message), 500
