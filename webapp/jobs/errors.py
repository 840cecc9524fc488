"""Errors the job engine raises; each carries the HTTP status and code the API answers with."""

from __future__ import annotations


class JobError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidParams(JobError):
    status = 422
    code = "invalid_params"


class NotFound(JobError):
    status = 404
    code = "not_found"


class Conflict(JobError):
    status = 409
    code = "conflict"


class Gone(JobError):
    status = 410
    code = "expired"


# Raised inside a render by document kinds and by the lease.


class RenderError(Exception):
    """Base of the errors a render can end with."""


class PermanentError(RenderError):
    """Bad input or a missing record: fail at once with a message a person can act on."""


class TransientError(RenderError):
    """Worth another attempt later (a busy server, a full disk being cleaned up …)."""


class LeaseLost(RenderError):
    """The row changed under the worker (cancelled, re-queued, failed): stop and publish nothing."""
