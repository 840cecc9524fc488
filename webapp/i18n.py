"""The reader's language: their own choice, then the browser's, then English.

Messages the engine stores are codes (webapp/messages.py), rendered in this locale when shown.
"""

from __future__ import annotations

from flask import current_app, has_request_context, request
from flask_login import current_user

from webapp.messages import N_

# Form fields named in messages, as the page labels them.
FIELD_LABELS: dict[str, str] = {
    "layout": N_("Layout"),
    "start_position": N_("Start at label"),
    "copies": N_("Copies"),
    "offset_x": N_("Offset → mm"),
    "offset_y": N_("Offset ↓ mm"),
}


def select_locale() -> str | None:
    """The user's own choice, then the browser's languages (Accept-Language), then English."""
    languages = current_app.config["LANGUAGES"]
    if current_user and current_user.is_authenticated and current_user.locale in languages:
        return current_user.locale
    if not has_request_context():
        return None
    return request.accept_languages.best_match(languages)
