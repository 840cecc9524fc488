"""The job engine (DESIGN §3). State changes only through `transitions`; people and code start
jobs through `submit`; workers run them through `runner`; `reaper` recovers and expires."""

from __future__ import annotations

from webapp.errors import (
    Conflict,
    Forbidden,
    Gone,
    InvalidParams,
    JobError,
    LeaseLost,
    NotFound,
    PermanentError,
    TransientError,
)
from webapp.jobs.serialize import eta_seconds, job_json
from webapp.jobs.submit import (
    cancel,
    enqueue,
    get_for,
    input_hash,
    kind_of,
    list_for,
    prepare,
    retry,
    submit,
)

__all__ = [
    "Conflict",
    "Forbidden",
    "Gone",
    "InvalidParams",
    "JobError",
    "LeaseLost",
    "NotFound",
    "PermanentError",
    "TransientError",
    "cancel",
    "enqueue",
    "eta_seconds",
    "get_for",
    "input_hash",
    "job_json",
    "kind_of",
    "list_for",
    "prepare",
    "retry",
    "submit",
]
