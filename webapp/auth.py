"""Session login for the browser (Flask-Login) and Bearer tokens for the API.

Sessions: Flask-Login keeps `User.get_id()` ("<id>.<session_version>") in the signed cookie; the
user loader refuses a cookie whose version is not the user's current one, so logout and a password
change (which add one) end every session cookie issued before, without a query more than loading
the user (the status polls stay cheap).

Remember-me: our own cookie (not Flask-Login's, which is the same value for a year and cannot be
revoked): a random value stored hashed in `remember_tokens`, replaced by a new value each time it
logs a browser back in; logout deletes it, a password change deletes all of the user's.

Logins are throttled per account (every attempt counted before its check, a success clears it)
and per address (failed attempts), Flask-Limiter, `LOGIN_FAILS_PER_*`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache, wraps
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import (
    Flask,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as flask_session
from flask_babel import ngettext
from flask_limiter import Limiter, RateLimitExceeded
from flask_login import current_user
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import joinedload

from webapp.db import write_txn
from webapp.extensions import db, login_manager
from webapp.http import api_error, is_htmx, wants_json
from webapp.models import ApiToken, RememberToken, User, utcnow

log = logging.getLogger(__name__)

# The name Flask-Login's own cookie had: a value from before (its format) is refused and cleared.
REMEMBER_COOKIE = "remember_token"
MIN_PASSWORD_LENGTH = 8


def client_address() -> str:
    return request.remote_addr or "unknown"


_ACCOUNT = "account:"  # the account limit's key: this and the email sent


def _login_account() -> str:
    return _ACCOUNT + (request.form.get("email") or "").strip().lower()


def _login_failed(_response: Response) -> bool:
    return bool(g.get("login_failed"))


# One limiter for the process; `init_app` gives it the app's storage. The limits are checked
# before the password, so past them the right one gets 429 too (`login_limits`).
limiter = Limiter(
    key_func=client_address,
    strategy="moving-window",
    headers_enabled=False,  # the 429 answer sets Retry-After itself
    in_memory_fallback_enabled=True,  # Redis down: throttle in this process, never fail a login
    swallow_errors=True,
)


def _login_address() -> str:
    return "address:" + client_address()


def _config_value(key: str) -> Callable[[], str]:
    return lambda: str(current_app.config[key])


def login_limits(view: Any) -> Any:
    """The login throttle. Per account every attempt is counted before its password is checked
    (the store adds it only while under the limit, in one step), so attempts sent in parallel
    cannot all pass before the first failure is counted; a successful login clears the
    account's count (`forget_account_attempts`). Per client address only failed attempts
    count, after the check: an office behind one address logs in all morning."""
    view = limiter.limit(
        _config_value("LOGIN_FAILS_PER_ADDRESS"),
        key_func=_login_address,
        methods=["POST"],
        deduct_when=_login_failed,
    )(view)
    return limiter.limit(
        _config_value("LOGIN_FAILS_PER_ACCOUNT"), key_func=_login_account, methods=["POST"]
    )(view)


def note_failed_login() -> None:
    """Count this request's failed attempt against the address's limit (the account's counted
    it already)."""
    g.login_failed = True


def forget_account_attempts() -> None:
    """The right password: the account's count starts again."""
    for current in limiter.current_limits:
        if any(str(arg).startswith(_ACCOUNT) for arg in current.request_args):
            try:
                limiter.limiter.clear(current.limit, *current.request_args)
            except Exception:  # the store went away meanwhile: the count runs out on its window
                log.warning("could not clear the login count of an account", exc_info=True)


def limiter_storage(config: dict[str, Any]) -> str:
    """The app's Redis (the broker's) when it has one; memory with the stub broker (unit tests)."""
    if config.get("RATELIMIT_STORAGE_URI"):
        return str(config["RATELIMIT_STORAGE_URI"])
    if config["BROKER"] == "stub":
        return "memory://"
    url = str(config["REDIS_URL"])
    return "redis+unix://" + url.removeprefix("unix://") if url.startswith("unix://") else url


def init_app(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_user)
    login_manager.request_loader(user_from_remember_cookie)
    login_manager.unauthorized_handler(unauthorized)
    # Flask-Login's own remember-me stays off: it would read this cookie, which nothing sets.
    app.config["REMEMBER_COOKIE_NAME"] = "pressroom_unused_remember"

    app.config["RATELIMIT_STORAGE_URI"] = limiter_storage(app.config)
    app.config.setdefault(
        "RATELIMIT_STORAGE_OPTIONS", {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    )
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "pressroom-login")
    limiter.init_app(app)
    _limit_only_where_limited(app)
    app.register_error_handler(RateLimitExceeded, too_many_logins)
    app.after_request(_remember_cookie)


def _limit_only_where_limited(app: Flask) -> None:
    """Flask-Limiter checks every request in a before_request hook, for limits of the whole
    app, which we have none of; a view's own limits (the login's) are checked by its decorator.
    The hook costs ~15 % of a status poll (docs/benchmarks.md): it goes."""
    hooks = app.before_request_funcs.setdefault(None, [])
    hooks[:] = [hook for hook in hooks if hook != limiter._check_request_limit]


def load_user(user_id: str) -> User | None:
    """The session's user, only while the session version in the cookie is the user's."""
    uid, _, version = user_id.partition(".")
    if not uid.isdecimal() or not version.isdecimal():
        return None  # a cookie from before session versions
    user = db.session.get(User, int(uid))
    if user is None or user.session_version != int(version):
        return None
    return user


def too_many_logins(exc: RateLimitExceeded) -> Any:
    """429 with Retry-After: a page saying when to try again (JSON under /api/)."""
    current = limiter.current_limit
    reset_at = current.reset_at if current is not None else time.time() + 60
    seconds = max(1, math.ceil(reset_at - time.time()))
    if current is not None:  # (the store's reset time may round past the window: not shown)
        seconds = min(seconds, current.limit.get_expiry())
    minutes = math.ceil(seconds / 60)
    if wants_json():
        response = api_error(
            429,
            "too_many_logins",
            f"Too many failed logins. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            retry_after=seconds,
        )
    else:
        when = ngettext("Try again in %(num)d minute.", "Try again in %(num)d minutes.", minutes)
        response = Response(render_template("auth/throttled.html", when=when), status=429)
    response.headers["Retry-After"] = str(seconds)
    return response


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


# -- remember-me ---------------------------------------------------------------------------


def _remember_lifetime() -> timedelta:
    return timedelta(days=current_app.config["REMEMBER_DAYS"])


def start_session(user: User, *, remember: bool = True) -> None:
    """Log `user` in on this browser: a session at their current version and, with `remember`,
    a new remember-me value (never the same on two logins)."""
    from flask_login import login_user

    flask_session.permanent = True
    login_user(user)
    if remember:
        token = secrets.token_urlsafe(32)
        now = utcnow()
        with write_txn() as session:
            session.execute(
                sa.delete(RememberToken).where(
                    RememberToken.user_id == user.id, RememberToken.expires_at <= now
                )
            )
            session.add(
                RememberToken(
                    user_id=user.id,
                    token_sha256=hash_token(token),
                    expires_at=now + _remember_lifetime(),
                )
            )
        g.remember_set = token


REMEMBER_GRACE_S = 30  # a replaced value still logs in (without rotating) for this long


def user_from_remember_cookie(req: Any) -> User | None:
    """No valid session: a remember-me cookie logs the browser back in, and is replaced by a new
    value at once (only runs when the session has no user). The value it replaced is still taken
    for REMEMBER_GRACE_S, without rotating again: a browser restoring several tabs sends it in
    parallel requests, and all but the first would otherwise land on the login page."""
    token = req.cookies.get(REMEMBER_COOKIE)
    if not token:
        return None
    digest = hash_token(token)
    now = utcnow()
    row = db.session.scalars(
        sa.select(RememberToken).where(
            sa.or_(
                RememberToken.token_sha256 == digest,
                sa.and_(
                    RememberToken.previous_sha256 == digest,
                    RememberToken.rotated_at > now - timedelta(seconds=REMEMBER_GRACE_S),
                ),
            )
        )
    ).first()
    if row is None or row.expires_at <= now:
        g.remember_clear = True
        return None
    user_id = row.user_id
    if row.token_sha256 == digest:
        fresh = secrets.token_urlsafe(32)
        with write_txn() as session:
            result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                sa.update(RememberToken)
                .where(RememberToken.id == row.id, RememberToken.token_sha256 == digest)
                .values(
                    token_sha256=hash_token(fresh),
                    previous_sha256=digest,
                    rotated_at=now,
                    expires_at=now + _remember_lifetime(),
                )
            )
        # No row changed: a parallel request rotated it a moment ago (taken: within the grace).
        if result.rowcount:
            g.remember_set = fresh
    user = db.session.get(User, user_id)
    if user is None:
        return None
    flask_session.permanent = True
    flask_session["_user_id"] = user.get_id()
    flask_session["_fresh"] = False
    return user


def _remember_cookie(response: Response) -> Response:
    """Set, renew or clear the remember-me cookie (HttpOnly, SameSite=Lax, Secure over https)."""
    config = current_app.config
    options: dict[str, Any] = {
        "path": "/",
        "secure": bool(config.get("SESSION_COOKIE_SECURE")),
        "httponly": True,
        "samesite": "Lax",
    }
    if token := g.get("remember_set"):
        max_age = int(_remember_lifetime().total_seconds())
        response.set_cookie(REMEMBER_COOKIE, token, max_age=max_age, **options)
    elif g.get("remember_clear"):
        response.delete_cookie(REMEMBER_COOKIE, **options)
    return response


def end_session(user_id: int) -> None:
    """Logout: every session cookie of the user issued so far stops working, and this browser's
    remember-me value is revoked. (Other browsers come back through their own remember-me.)"""
    token = request.cookies.get(REMEMBER_COOKIE)
    with write_txn() as session:
        session.execute(
            sa.update(User)
            .where(User.id == user_id)
            .values(session_version=User.session_version + 1)
        )
        if token:
            # By either value: this very request may have rotated it (a browser logged back in
            # by its remember-me cookie, then logging out), leaving the cookie's as the previous.
            digest = hash_token(token)
            session.execute(
                sa.delete(RememberToken).where(
                    sa.or_(
                        RememberToken.token_sha256 == digest,
                        RememberToken.previous_sha256 == digest,
                    )
                )
            )
    g.pop("remember_set", None)  # a value rotated in this request must not be sent now
    g.remember_clear = True


def change_password(user_id: int, password: str) -> None:
    """A new password ends every session and revokes every remember-me value of the user
    (re-login this browser with `start_session`)."""
    from werkzeug.security import generate_password_hash

    with write_txn() as session:
        session.execute(
            sa.update(User)
            .where(User.id == user_id)
            .values(
                password_hash=generate_password_hash(password),
                session_version=User.session_version + 1,
            )
        )
        session.execute(sa.delete(RememberToken).where(RememberToken.user_id == user_id))


# -- API tokens ----------------------------------------------------------------------------


def create_token(user: User, name: str = "", expires_at: datetime | None = None) -> str:
    """A new API token for `user`; only its hash is stored, so show it once."""
    token = "prt_" + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id, token_sha256=hash_token(token), name=name, expires_at=expires_at
    )
    with write_txn() as session:  # callers have usually just read the user: see webapp/db.py
        session.add(row)
        session.flush()
        token_id = row.id
    forget_last_use(token_id)  # SQLite may give a revoked token's id again
    return token


def revoke_token(token_id: int) -> str | None:
    """Delete the API token `token_id` (it stops working at once): its user's email, or None
    when there is no such token."""
    with write_txn() as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            return None
        email = row.user.email
        session.delete(row)
    forget_last_use(token_id)
    return email


LAST_USE_KEY = "pressroom:api_token_last_use"  # Redis hash: token id -> Unix time
LAST_USE_EVERY_S = 60.0  # a token's use is noted at most this often (polls come every second)
_REDIS_RETRY_S = 30.0


@cache
def _token_statement() -> Any:
    """A token and its user in one query, built once (every API request runs it)."""
    return (
        sa.select(ApiToken)
        .options(joinedload(ApiToken.user))
        .where(ApiToken.token_sha256 == sa.bindparam("sha256"))
    )


def user_for_bearer(header: str | None) -> User | None:
    """The user of a valid, unexpired API token (None otherwise; `bearer_refusal` says why).

    Its last use is recorded without a database write on reads: a GET (a status poll) must keep
    working on a locked or read-only database and cost no write lock, so reads note the time in
    Redis (a hash, short socket timeouts, skipped for a while after an error: a Redis problem
    never fails the request), and `pressroom tokens list` merges it in. Requests that write
    anyway (POST, DELETE …) store it in the row, at most once a minute. With no Redis (the stub
    broker of unit tests) a read is not recorded.
    """
    if not header or not header.startswith("Bearer "):
        return None
    token = header.removeprefix("Bearer ").strip()
    row = db.session.scalars(_token_statement(), {"sha256": hash_token(token)}).first()
    if row is None:
        return None
    now = utcnow()
    if row.expires_at is not None and row.expires_at <= now:
        g.bearer_expired = row.expires_at
        return None
    user = row.user
    if request.method in ("GET", "HEAD", "OPTIONS"):
        note_read_use(row.id)
    elif row.last_used_at is None or (now - row.last_used_at).total_seconds() > LAST_USE_EVERY_S:
        with write_txn() as session:
            session.execute(
                sa.update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)
            )
    return user


def bearer_refusal(message: str) -> Response:
    """The 401 for a missing or invalid token; an expired one says so and since when."""
    expired: datetime | None = g.get("bearer_expired")
    if expired is not None:
        when = expired.strftime("%Y-%m-%d %H:%M UTC")
        response = api_error(
            401,
            "token_expired",
            f"This API token expired on {when}. Ask an administrator for a new one "
            "('pressroom tokens create').",
        )
        response.headers["WWW-Authenticate"] = (
            'Bearer realm="pressroom", error="invalid_token", error_description="The token expired"'
        )
        return response
    response = api_error(401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="pressroom"'
    return response


def _last_use_redis() -> Any | None:
    """This app's Redis for the last-use notes: None with the stub broker or after an error."""
    ext = current_app.extensions
    if (
        current_app.config["BROKER"] == "stub"
        or ext.get("pressroom.last_use_down", 0) > time.monotonic()
    ):
        return None
    client = ext.get("pressroom.last_use_redis")
    if client is None:
        import redis

        client = redis.Redis.from_url(
            current_app.config["REDIS_URL"], socket_timeout=0.3, socket_connect_timeout=0.3
        )
        ext["pressroom.last_use_redis"] = client
    return client


def note_read_use(token_id: int) -> None:
    # token id -> monotonic time this process last noted it
    noted: dict[int, float] = current_app.extensions.setdefault("pressroom.last_use_noted", {})
    if time.monotonic() - noted.get(token_id, -math.inf) < LAST_USE_EVERY_S:
        return
    client = _last_use_redis()
    if client is None:
        return
    try:
        client.hset(LAST_USE_KEY, str(token_id), str(time.time()))
    except Exception:  # a Redis problem never fails the request: try again later
        current_app.extensions["pressroom.last_use_down"] = time.monotonic() + _REDIS_RETRY_S
        return
    noted[token_id] = time.monotonic()


def forget_last_use(token_id: int) -> None:
    client = _last_use_redis()
    if client is None:
        return
    try:
        client.hdel(LAST_USE_KEY, str(token_id))
    except Exception:
        current_app.extensions["pressroom.last_use_down"] = time.monotonic() + _REDIS_RETRY_S


def last_uses(rows: list[ApiToken]) -> dict[int, datetime | None]:
    """Each token's last use: the later of the row's and Redis's note (reads)."""
    noted: dict[int, datetime] = {}
    client = _last_use_redis()
    if client is not None and rows:
        try:
            values = client.hmget(LAST_USE_KEY, [str(row.id) for row in rows])
        except Exception:
            values = [None] * len(rows)
        for row, value in zip(rows, values, strict=True):
            if value is not None:
                noted[row.id] = datetime.fromtimestamp(float(value), UTC).replace(tzinfo=None)
    result: dict[int, datetime | None] = {}
    for row in rows:
        times = [t for t in (row.last_used_at, noted.get(row.id)) if t is not None]
        result[row.id] = max(times) if times else None
    return result
