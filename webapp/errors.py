"""The errors the application raises. Each carries a message code (webapp/messages.py), never a
sentence, and the ones a request can meet carry the HTTP status and API code they answer with."""

from __future__ import annotations

import time
from typing import Any

from webapp.messages import Msg


class Problem(Exception):
    """Base: a message code with its parameters."""

    def __init__(self, code: str, **params: Any) -> None:
        self.msg = Msg(code, params)
        super().__init__(self.msg.english() if _has_app() else code)

    @property
    def code(self) -> str:
        return self.msg.code


def _has_app() -> bool:
    from flask import has_app_context

    return has_app_context()


# -- refusals of a request ------------------------------------------------------------------------


class JobError(Problem):
    status = 400
    api_code = "bad_request"


class InvalidParams(JobError):
    """Bad parameters; `fields` maps a field's path ("copies", "filter.week") to its message."""

    status = 422
    api_code = "invalid_params"

    def __init__(
        self, code: str = "invalid_params", *, fields: dict[str, Msg] | None = None, **params: Any
    ) -> None:
        super().__init__(code, **params)
        self.fields = fields or {}

    @classmethod
    def field(cls, name: str, code: str, **params: Any) -> InvalidParams:
        """One bad field: its message is also the error's message."""
        error = cls(code, **params)
        error.fields = {name: error.msg}
        return error


class Forbidden(JobError):
    status = 403
    api_code = "forbidden"


class NotFound(JobError):
    status = 404
    api_code = "not_found"


class Conflict(JobError):
    status = 409
    api_code = "conflict"


class Gone(JobError):
    status = 410
    api_code = "expired"


# -- how a render can end -------------------------------------------------------------------------


class RenderError(Problem):
    """Base of the errors a render can end with."""


class PermanentError(RenderError):
    """Bad input or a missing record: fail at once with a message a person can act on."""


class TransientError(RenderError):
    """Worth another attempt later (a busy server, a broken connection …)."""


class DatabaseBusy(TransientError):
    """A write could not get the database in time (its write lock is held, it is read-only, its
    disk failed): the web answers 503 with Retry-After, a worker tries again later. `holder`
    names who held the lock ("pid 1234 (worker) since 12:01:03 UTC"), when that is known."""

    status = 503
    api_code = "database_busy"
    retry_after_s = 5
    last_at = 0.0  # time.monotonic() of the latest in this process (/healthz's cache reads it)

    def __init__(self, holder: str | None = None, *, reason: str = "locked") -> None:
        DatabaseBusy.last_at = time.monotonic()
        self.holder = holder
        self.reason = reason  # locked, readonly, io, unavailable
        super().__init__("database_busy", holder=describe_unavailable(reason, holder))


def describe_unavailable(reason: str, holder: str | None = None) -> str:
    """What keeps the database from being written, in English (logs, the API, /healthz)."""
    if reason == "locked":
        return f"locked by {holder}" if holder else "locked by another process"
    return {
        "readonly": "the database is read-only",
        "io": "the database's disk failed (disk I/O error or disk full)",
    }.get(reason, "the database cannot be reached")


class LeaseLost(Exception):
    """The row changed under the worker (cancelled, re-queued, failed): stop and publish nothing."""
