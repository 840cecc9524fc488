"""The job engine: the only code that writes job state (DESIGN §3).

Transitions: submit, send, claim, progress, finish, fail, retry_later (engine retries), cancel,
retry (by a user), reap, expire. Views and actors call these; nothing else writes `Job` rows.
"""

from webapp.jobs.engine import (
    cancel,
    get_for,
    input_hash,
    kind_of,
    list_for,
    prepare,
    retry,
    send,
    submit,
)
from webapp.jobs.errors import (
    Conflict,
    Gone,
    InvalidParams,
    JobError,
    LeaseLost,
    NotFound,
    PermanentError,
    TransientError,
)
from webapp.jobs.lease import Lease, claim
from webapp.jobs.reaper import expire, reap
from webapp.jobs.runner import current_lease, run
from webapp.jobs.serialize import eta_seconds, job_json

__all__ = [
    "Conflict", "Gone", "InvalidParams", "JobError", "Lease", "LeaseLost", "NotFound",
    "PermanentError", "TransientError", "cancel", "claim", "current_lease", "eta_seconds",
    "expire", "get_for", "input_hash", "job_json", "kind_of", "list_for", "prepare", "reap",
    "retry", "run", "send", "submit",
]
