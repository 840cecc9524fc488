"""What a worker does with one message: claim, render (whole, split, or one chunk), finish."""

from __future__ import annotations

import contextvars
import errno
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pikepdf
import sqlalchemy as sa
from flask import current_app

from webapp.documents import Part
from webapp.extensions import db
from webapp.jobs import artifacts
from webapp.jobs.db import write_txn
from webapp.jobs.engine import kind_of, send
from webapp.jobs.errors import LeaseLost, PermanentError, TransientError
from webapp.jobs.lease import Lease, _cas, claim, worker_id
from webapp.models import Job, JobStatus, new_id, utcnow
from webapp.pdf.merge import merge_pdfs

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
        lease.fail(str(exc))
    except TransientError as exc:
        lease.retry_later(str(exc))
    except OSError as exc:
        lease.retry_later(_describe_os_error(exc))
    except Exception as exc:
        log.exception("job %s: unexpected error", lease.job_id)
        lease.retry_later(f"Unexpected error: {exc.__class__.__name__}: {exc}")
    except BaseException:
        # Dramatiq's TimeLimitExceeded or a shutdown: the worker middleware fails the job.
        interrupted = True
        raise
    finally:
        if not interrupted:
            lease.cleanup()
            current_lease.reset(token)


def _describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "The file could not be written: the disk is full. Ask an administrator to free space."
    # ENOTDIR: something that is not a folder sits where the artifact directory should be
    # (seen in the integration tests); the same advice applies, "Not a directory" alone does not help.
    if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM, errno.ENOTDIR):
        return ("The file could not be written: the artifact directory is not writable. "
                "Ask an administrator to check its permissions.")
    return f"The file could not be written: {exc.strerror or exc}."


def _run(lease: Lease) -> None:
    job = db.session.get(Job, lease.job_id)
    assert job is not None
    kind = kind_of(job.kind)
    if job.parent_id:
        parent = db.session.get(Job, job.parent_id)
        assert parent is not None
        part = Part(**job.params["part"])
        out = lease.temp_path()
        kind.render(parent, lease, out, part)
        if finish_chunk(lease, out, part.index):
            guarded(parent_lease(parent.id), merge)
        return
    if job.chunks_total and job.chunks_done == job.chunks_total:
        merge(lease)  # the merge of a previous attempt died half way
        return
    parts = kind.plan_parts(job, current_app.config["CHUNK_LABELS"])
    if len(parts) > 1:
        split(lease, job, parts)
        return
    out = lease.temp_path()
    kind.render(job, lease, out, None)
    lease.progress(job.progress_total, "Saving", force=True)
    lease.finish(out)


def split(lease: Lease, job: Job, parts: list[Part]) -> None:
    """Queue one internal chunk per part; the parent stays running until the last one merges."""
    now = utcnow()
    ids = [new_id() for _ in parts]
    with write_txn() as session:
        changed = session.execute(_cas(job.id, lease.attempts).values(
            chunks_total=len(parts), chunks_done=0, progress_done=0, heartbeat_at=now,
            progress_step=f"Rendering in {len(parts)} parts")).rowcount
        if not changed:
            raise LeaseLost(job.id)
        session.execute(sa.delete(Job).where(Job.parent_id == job.id))
        for chunk_id, part in zip(ids, parts, strict=True):
            session.add(Job(id=chunk_id, owner_id=job.owner_id, kind=job.kind,
                            params={"part": {"index": part.index, "start": part.start,
                                             "stop": part.stop}},
                            summary={}, input_hash=None, status=JobStatus.QUEUED,
                            parent_id=job.id, chunk_index=part.index,
                            progress_total=part.stop - part.start, max_attempts=job.max_attempts,
                            created_at=now, sent_at=now))
    # Parts published by an earlier attempt (cancelled or failed, then retried with possibly
    # changed data) must not be merged into this one: chunk paths are per index, not per
    # content, and publish() keeps an existing file. Old chunks can no longer publish (their
    # rows are gone, so their compare-and-set fails).
    shutil.rmtree(artifacts.chunk_path(job.id, 0).parent, ignore_errors=True)
    log.info("job %s split into %d chunks", job.id, len(parts))
    for chunk_id in ids:
        send(chunk_id, chunk=True)


def finish_chunk(lease: Lease, out: Path, index: int) -> bool:
    """Mark the chunk done and count it on the parent; True when this chunk completed the set."""
    assert lease.parent_id is not None
    with write_txn() as session:
        changed = session.execute(_cas(lease.job_id, lease.attempts).values(
            status=JobStatus.DONE, finished_at=utcnow(), worker=lease.worker)).rowcount
        if not changed:
            raise LeaseLost(lease.job_id)
        row = session.execute(sa.update(Job).where(
            Job.id == lease.parent_id, Job.status == JobStatus.RUNNING
        ).values(chunks_done=Job.chunks_done + 1, heartbeat_at=utcnow(), worker=lease.worker)
          .returning(Job.chunks_done, Job.chunks_total)).first()
        if row is None:
            raise LeaseLost(lease.parent_id)
        artifacts.publish(out, str(artifacts.chunk_path(lease.parent_id, index)
                                   .relative_to(artifacts.root())))
    return row[0] == row[1]


def parent_lease(parent_id: str) -> Lease:
    """The lease the worker that finished the last chunk holds on the parent while it merges."""
    parent = db.session.get(Job, parent_id)
    assert parent is not None
    db.session.commit()
    return Lease(job_id=parent.id, attempts=parent.attempts, max_attempts=parent.max_attempts,
                 parent_id=None, worker=worker_id(),
                 deadline=time.monotonic() + current_app.config["JOB_TIME_LIMIT_S"],
                 min_interval=0.0, heartbeat_s=current_app.config["HEARTBEAT_S"])


def merge(lease: Lease) -> None:
    """Merge the parent's chunk files in order and publish the result as the parent's file."""
    parent = db.session.get(Job, lease.job_id)
    assert parent is not None
    lease.progress(parent.progress_total, f"Merging {parent.chunks_total} parts", force=True)
    paths = [artifacts.chunk_path(parent.id, i) for i in range(parent.chunks_total)]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise PermanentError(f"Parts of this batch are missing ({', '.join(missing)}); retry it.")
    out = lease.temp_path()
    try:
        merge_pdfs(paths, out)  # linear time: pikepdf's pages.extend is quadratic (6 s at 10k)
    except pikepdf.PdfError as exc:
        raise TransientError(f"Merging the parts failed: {exc}") from exc
    lease.finish(out)
    with write_txn() as session:
        session.execute(sa.delete(Job).where(Job.parent_id == parent.id))
    shutil.rmtree(artifacts.chunk_path(parent.id, 0).parent, ignore_errors=True)
