"""Request and response helpers in one place: htmx detection, "wants JSON", error bodies, redirects."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, redirect, request

from webapp.messages import Msg


def whole_number(text: str) -> bool:
    """A form value that is a whole number a database integer holds: ASCII digits only
    (`isdecimal`, not `isdigit`: "²" is a digit int() refuses), never a 5,000-digit one."""
    return text.isascii() and text.isdecimal() and len(text) <= 18


def is_htmx() -> bool:
    """The one place that decides whether a request came from htmx."""
    return bool(getattr(request, "htmx", False))


def wants_json() -> bool:
    """Everything under /api/ answers JSON, errors included."""
    return request.path.startswith("/api/")


def api_error(status: int, code: str, message: str | Msg, **extra: Any) -> Response:
    """`{"error": {"code", "message", …}}` with `status`; a `Msg` is given in English."""
    body: dict[str, Any] = {
        "code": code,
        "message": message.english() if isinstance(message, Msg) else message,
    }
    body.update(extra)
    response = jsonify({"error": body})
    response.status_code = status
    return response


def vary_htmx(response: Response) -> Response:
    """A URL that answers a page or a fragment must say so to caches."""
    response.vary.add("HX-Request")
    return response


def see_other(url: str) -> Any:
    """Go to `url` after a POST: 303 for a form, 204 + HX-Redirect for an htmx request."""
    if is_htmx():
        return "", 204, {"HX-Redirect": url}
    return redirect(url, code=303)


# The Content-Security-Policy of every answer: scripts and styles only from our own files under
# /static (no inline <script>, no on*= handlers, no style= attributes, no eval: htmx is configured
# without it in base.html), images of our own (the label preview) or data: URLs, no plugins, no
# <base>, forms only to us. PDFs are downloaded or opened as a page of their own, never framed,
# so `frame-ancestors 'none'` holds for files too. tests/unit/test_headers.py keeps the templates
# free of inline script and style; the browser tests fail on any violation.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        # No page of ours can be framed, so the Cancel and Print buttons cannot be clickjacked.
        "frame-ancestors 'none'",
    )
)

# Headers every answer carries (a page that sets its own keeps it: the public protocol page
# sends no referrer at all).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "same-origin",
}


def security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
