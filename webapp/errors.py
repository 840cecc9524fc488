"""The errors the application raises. Each carries a message code (webapp/messages.py), never a
sentence, and the ones a request can meet carry the HTTP status and API code they answer with."""

from __future__ import annotations

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


class LeaseLost(Exception):
    """The row changed under the worker (cancelled, re-queued, failed): stop and publish nothing."""
