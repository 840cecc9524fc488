"""Small response helpers shared by the views."""

from __future__ import annotations

from typing import Any

from flask import redirect

from webapp.auth import is_htmx


def see_other(url: str) -> Any:
    """Go to `url` after a POST: 303 for a form, 204 + HX-Redirect for an htmx request."""
    if is_htmx():
        return "", 204, {"HX-Redirect": url}
    return redirect(url, code=303)
