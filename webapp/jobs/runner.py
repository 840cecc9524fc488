"""What a worker does with one message: claim, render (whole, split, or one chunk), finish."""

from __future__ import annotations

import contextvars
import errno
import logging
from collections.abc import Callable

from flask import current_app

from webapp.documents import Part
from webapp.errors import LeaseLost, PermanentError, TransientError
from webapp.extensions import db
from webapp.jobs import batches
from webapp.jobs.lease import Lease, claim
from webapp.jobs.submit import kind_of
from webapp.messages import Msg
from webapp.models import Job

log = logging.getLogger(__name__)

#: The lease of the message being processed, for the worker middleware (time limits).
current_lease: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("lease", default=None)


def run(job_id: str) -> None:
    """Process one message for `job_id`; every outcome is written to the job row."""
    lease = claim(job_id)
    if lease is None:
        log.info("job %s is not claimable; message dropped", job_id)
        return
    guarded(lease, _run)


def guarded(lease: Lease, work: Callable[[Lease], None]) -> None:
    """Run `work` under `lease` and turn every way it can end into a job state."""
    token = current_lease.set(lease)
    interrupted = False
    try:
        work(lease)
    except LeaseLost:
        lease.abandon()
    except PermanentError as exc:
        lease.fail(exc.msg)
    except TransientError as exc:
        lease.retry_later(exc.msg)
    except OSError as exc:
        lease.retry_later(describe_os_error(exc))
    except Exception as exc:
        log.exception("job %s: unexpected error", lease.job_id)
        lease.retry_later(Msg("unexpected", {"reason": f"{exc.__class__.__name__}: {exc}"}))
    except BaseException:
        # Dramatiq's TimeLimitExceeded or a shutdown: the worker middleware fails the job.
        interrupted = True
        raise
    finally:
        if not interrupted:
            lease.cleanup()
            current_lease.reset(token)


def describe_os_error(exc: OSError) -> Msg:
    if exc.errno == errno.ENOSPC:
        return Msg("disk_full")
    # ENOTDIR: something that is not a folder sits where the artifact directory should be
    # (seen in the integration tests); the same advice applies, "Not a directory" alone does not help.
    if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM, errno.ENOTDIR):
        return Msg("not_writable")
    return Msg("file_error", {"reason": exc.strerror or str(exc)})


def _run(lease: Lease) -> None:
    job = db.session.get(Job, lease.job_id)
    assert job is not None
    kind = kind_of(job.kind)
    if kind.fans_out:
        batches.run_bulk(kind, lease, job)
        return
    if job.parent_id:
        parent = db.session.get(Job, job.parent_id)
        assert parent is not None
        part = Part(**job.params["part"])
        out = lease.temp_path()
        kind.render(parent, lease, out, part)
        parent_claims = batches.finish_chunk(lease, out, part.index)
        if parent_claims is not None:
            guarded(
                batches.parent_lease(parent.id, parent_claims, kind.suffix),
                lambda parent_lease: batches.merge(kind, parent_lease),
            )
        return
    if job.chunks_total and job.chunks_done == job.chunks_total:
        batches.merge(kind, lease)  # the merge of a previous attempt died half way
        return
    parts = kind.split(job, current_app.config)
    if len(parts) > 1:
        batches.split(lease, job, parts)
        return
    out = lease.temp_path()
    kind.render(job, lease, out, None)
    lease.progress(job.progress_total, "saving", force=True)
    lease.finish(out, kind.media_type)
