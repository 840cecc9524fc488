"""The status path's fast lane: every open job page asks for its status once a second.

The page that shows a job (rendered with the full login machinery) gives its polls a signed
watch token, `?w=<user id>.<locale>.<issued>.<signature>`: an HMAC of the job, the user, the
user's session version, the locale and the minute it was issued (it lasts a session's lifetime). A poll that carries one (from a browser that still holds a
session cookie, which is not decoded) is answered from one indexed SELECT
(the job's row and the user's session version) with no session cookie read or re-signed, no
user loaded through the ORM and, when nothing changed, a 304 decided before any template work.
Logout or a password change (a new session version) ends every token issued before; a token
opens the status of one job to one user and nothing else (no file, no control).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from babel import Locale
from flask import Flask, Request, current_app, g
from flask.globals import request_ctx
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from webapp.extensions import db
from webapp.models import ApiToken, Artifact, Job, User, utcnow

PARAM = "w"


@dataclass(frozen=True)
class Watcher:
    """What a watch token claims (checked against the database by `read`)."""

    user_id: int
    locale: str
    issued: int  # minutes since the epoch
    signature: str


def _key() -> bytes:
    key = current_app.extensions.get("pressroom.watch_key")
    if key is None:
        secret = str(current_app.config["SECRET_KEY"]).encode()
        key = hmac.new(secret, b"pressroom.watch-token", hashlib.sha256).digest()
        current_app.extensions["pressroom.watch_key"] = key
    return key


def _sign(job_id: str, user_id: int, session_version: int, locale: str, issued: int) -> str:
    message = f"{job_id}|{user_id}|{session_version}|{locale}|{issued}".encode()
    mac = hmac.new(_key(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


def _minute() -> int:
    return int(time.time() // 60)


def token(job_id: str, user: User, locale: str, issued: int | None = None) -> str:
    """The watch token of `job_id` for `user` reading it in `locale`, valid for the session
    lifetime from `issued` (minutes since the epoch; now by default)."""
    minute = _minute() if issued is None else issued
    signature = _sign(job_id, user.id, user.session_version or 0, locale, minute)
    return f"{user.id}.{locale}.{minute:x}.{signature}"


def parse(text: Any) -> Watcher | None:
    """The token's claim, or None when it is not one or too old (the poll then goes the login
    way): a token lasts as long as a session (PERMANENT_SESSION_LIFETIME) from its page."""
    if not isinstance(text, str) or len(text) > 80:
        return None
    parts = text.split(".")
    if len(parts) != 4 or not parts[0].isdigit() or len(parts[0]) > 12:
        return None
    user_id, locale, issued_hex, signature = parts
    if locale not in current_app.config["LANGUAGES"]:
        return None
    try:
        issued = int(issued_hex, 16) if len(issued_hex) <= 10 else -1
    except ValueError:
        return None
    lifetime = current_app.permanent_session_lifetime.total_seconds() // 60
    if not 0 <= _minute() - issued <= lifetime:
        return None
    return Watcher(int(user_id), locale, issued, signature)


class JobRow(SimpleNamespace):
    """A job's row as a poll reads it: the attributes and properties the status partial uses,
    without an ORM instance (building one costs more than the rest of a 304)."""

    state = Job.state
    step = Job.step
    error = Job.error
    artifact: Any = None  # a finished job's partial is rendered from the ORM row (views/jobs.py)


_ATTRS = [(prop.key, prop.columns[0]) for prop in Job.__mapper__.column_attrs]
_JOB = [column.label(key) for key, column in _ATTRS]
_WATCHED = (
    sa.select(*_JOB, User.session_version)
    .select_from(Job)
    .join(User, User.id == sa.bindparam("user_id"))
    .where(Job.id == sa.bindparam("job_id"), Job.parent_id.is_(None))
)
# The API's GET of one job, with the caller's token: the job, its file, the token's owner.
_API = (
    sa.select(
        *_JOB,
        Artifact.size,
        Artifact.sha256,
        ApiToken.id,
        ApiToken.user_id,
        ApiToken.expires_at,
    )
    .select_from(ApiToken)
    .join(Job, Job.id == sa.bindparam("job_id"))
    .outerjoin(Artifact, Artifact.id == Job.artifact_id)
    .where(ApiToken.token_sha256 == sa.bindparam("digest"), Job.parent_id.is_(None))
)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: tuple[str, ...] | None
    processors: list[Callable[[Any], Any] | None]


def _compiled(engine: sa.Engine, query: sa.Select[Any]) -> _Compiled:
    """`query` compiled once per engine, with each column's result conversion (SQLite keeps
    datetimes and JSON as text), to run on the DBAPI cursor directly."""
    cache_ = current_app.extensions.setdefault("pressroom.poll_sql", {})
    found = cache_.get((engine, query))
    if found is None:
        compiled = query.compile(dialect=engine.dialect)
        found = cache_[(engine, query)] = _Compiled(
            sql=str(compiled),
            positional=tuple(compiled.positiontup or ()) if compiled.positional else None,
            processors=[
                column.type.dialect_impl(engine.dialect).result_processor(engine.dialect, None)
                for column in query.selected_columns
            ],
        )
    return found


def _first(query: sa.Select[Any], values: dict[str, Any]) -> list[Any] | None:
    """The first row of `query` with `values`, converted: one round trip, no ORM, no
    SQLAlchemy execution context (which costs more than the SELECT itself here)."""
    engine = db.engine
    compiled = _compiled(engine, query)
    params: Any = values
    if compiled.positional is not None:
        params = tuple(values[name] for name in compiled.positional)
    conn = engine.raw_connection()
    try:
        cursor = conn.cursor()
        cursor.execute(compiled.sql, params)
        raw = cursor.fetchone()
        cursor.close()
    finally:
        conn.close()
    if raw is None:
        return None
    return [
        value if convert is None else convert(value)
        for value, convert in zip(raw, compiled.processors, strict=True)
    ]


def _job(row: list[Any]) -> JobRow:
    return JobRow(**{key: value for (key, _column), value in zip(_ATTRS, row, strict=False)})


def read(job_id: str, watcher: Watcher) -> JobRow | None:
    """The job's row if the token is valid for it; None otherwise."""
    if len(job_id) > 24:
        return None
    row = _first(_WATCHED, {"job_id": job_id, "user_id": watcher.user_id})
    if row is None:
        return None
    expected = _sign(job_id, watcher.user_id, row[-1] or 0, watcher.locale, watcher.issued)
    if not hmac.compare_digest(expected, watcher.signature):
        return None
    return _job(row)


@dataclass(frozen=True)
class ApiRead:
    job: JobRow
    token_id: int


def read_for_token(job_id: str, digest: str) -> ApiRead | None:
    """The API's fast GET: the job if the token (its sha256) is valid and its user owns the
    job. None sends the request the long way (which also answers 401, 404 or a job readable
    as an admin or as a shared document)."""
    if len(job_id) > 24:
        return None
    row = _first(_API, {"job_id": job_id, "digest": digest})
    if row is None:
        return None
    size, sha256, token_id, user_id, expires_at = row[len(_ATTRS) :]
    job = _job(row)
    if job.owner_id != user_id or (expires_at is not None and expires_at <= utcnow()):
        return None
    if size is not None:
        job.artifact = SimpleNamespace(size=size, sha256=sha256)
    return ApiRead(job, token_id)


@cache
def locale(name: str) -> Locale:
    return Locale.parse(name)


def is_poll(app: Flask, request: Request) -> bool:
    """A watch-token poll: `GET /jobs/<id>/status?w=…` from a browser that still has a session
    cookie (cheap to tell: no URL matching, the cookie not decoded). One without the cookie (its
    session expired) goes the login way, to the login page and back to the job; any other
    request under /jobs/ with a `w` is an ordinary one."""
    return (
        request.method == "GET"
        and request.path.startswith("/jobs/")
        and request.path.endswith("/status")
        and PARAM in request.args
        and app.config["SESSION_COOKIE_NAME"] in request.cookies
    )


def open_real_session() -> None:
    """Read the session cookie after all, for the rest of this request (a finished job's last
    answer is rendered the full way: the user, their rights, the forms' CSRF fields)."""
    ctx = request_ctx._get_current_object()  # type: ignore[attr-defined]
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    real = SecureCookieSessionInterface.open_session(app.session_interface, app, ctx.request)
    ctx._session = real if real is not None else app.session_interface.make_null_session(app)
    g.pop("_login_user", None)


class PollAwareSessions(SecureCookieSessionInterface):
    """The signed-cookie session, except for watch-token polls: they neither read the cookie
    nor re-sign it (a sliding session would otherwise be re-signed and re-sent every second)."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if is_poll(app, request):
            # No cookie to read (Flask saves no null session either).
            return self.make_null_session(app)
        return super().open_session(app, request)
