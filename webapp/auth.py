"""Session login for the browser (Flask-Login) and Bearer tokens for the API."""

from __future__ import annotations

import hashlib
import secrets
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask, Response, abort, redirect, request, url_for
from flask_login import current_user

from webapp.db import write_txn
from webapp.extensions import db, login_manager
from webapp.http import api_error, is_htmx, wants_json
from webapp.models import ApiToken, User, utcnow


def init_app(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "basic"
    login_manager.user_loader(lambda user_id: db.session.get(User, int(user_id)))
    login_manager.unauthorized_handler(unauthorized)


def safe_next(target: str | None) -> str | None:
    """Only same-site relative paths may be a post-login destination."""
    if not target:
        return None
    # Browsers read "/\\evil.example" as "//evil.example" and drop tabs and newlines from URLs.
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _page_path(url: str | None) -> str | None:
    """Path and query of one of our own pages (HX-Current-URL, Referer), for `next=`."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.netloc and parts.netloc != request.host:
        return None
    return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))


def unauthorized() -> Any:
    """Not logged in: JSON for the API, HX-Redirect for htmx, a redirect for pages."""
    if wants_json():
        return api_error(401, "unauthorized", "Send 'Authorization: Bearer <token>'.")
    if is_htmx():
        # Back to the page the user was on (a poll's own URL is only a fragment).
        back = _page_path(request.headers.get("HX-Current-URL"))
        response = Response("", status=401)
        response.headers["HX-Redirect"] = url_for("auth.login", next=back, expired=1)
        return response
    # After a POST (an expired session), going back means the form's page, not the POST URL.
    back = (
        request.full_path.rstrip("?") if request.method == "GET" else _page_path(request.referrer)
    )
    return redirect(url_for("auth.login", next=back))


def admin_required(view: Any) -> Any:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return unauthorized()
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(user: User) -> str:
    """A new API token for `user`; only its hash is stored, so show it once."""
    token = "prt_" + secrets.token_urlsafe(32)
    with write_txn() as session:  # callers have usually just read the user: see webapp/db.py
        session.add(ApiToken(user_id=user.id, token_sha256=hash_token(token)))
    return token


def user_for_bearer(header: str | None) -> User | None:
    if not header or not header.startswith("Bearer "):
        return None
    token = header.removeprefix("Bearer ").strip()
    row = db.session.scalars(
        sa.select(ApiToken).where(ApiToken.token_sha256 == hash_token(token))
    ).first()
    if row is None:
        return None
    now = utcnow()
    user = row.user
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        # Throttled (status polling must not write on every request), in its own transaction.
        with write_txn() as session:
            session.execute(
                sa.update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)
            )
    return user
