"""What a worker does with one message: claim, render (whole, split, or one chunk), finish.

A disk that cannot take a file (full, over quota, failing: ENOSPC, EDQUOT, EIO) fails the job
at once, saying how much is free and, where it can be estimated, how much was needed: a retry
would fill the same disk again. Free space is checked before a merge (the parts' sizes) and
before a chunk's render (its siblings' sizes) so that no C library meets a full disk half way
(qpdf aborted the whole worker process on one: webapp/pdf/merge.py). Whatever a failed or
stopped attempt wrote (its temp files; the parts of a batch that ended) is removed at once.
"""

from __future__ import annotations

import contextvars
import errno
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from flask import current_app

from webapp import storage
from webapp.db import unavailable_reason, write_txn
from webapp.documents import DocumentKind, Part
from webapp.errors import DatabaseBusy, LeaseLost, PermanentError, TransientError
from webapp.extensions import db
from webapp.jobs import artifacts, batches
from webapp.jobs.lease import Lease, claim
from webapp.jobs.submit import kind_of
from webapp.messages import Msg
from webapp.models import LIVE_STATUSES, Job

log = logging.getLogger(__name__)

#: The lease of the message being processed, for the worker middleware (time limits).
current_lease: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("lease", default=None)
#: Bytes the current write was estimated to need (for the disk-full message), when known.
current_need: contextvars.ContextVar[int | None] = contextvars.ContextVar("need", default=None)

#: errno values of a disk that cannot take the file: a retry would meet the same disk.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO})


def run(job_id: str) -> None:
    """Process one message for `job_id`; every outcome is written to the job row."""
    lease = claim(job_id)
    if lease is None:
        log.info("job %s is not claimable; message dropped", job_id)
        _drop_parts_of_ended_batch(job_id)
        return
    guarded(lease, _run)


def guarded(lease: Lease, work: Callable[[Lease], None], *, batch_id: str | None = None) -> None:
    """Run `work` under `lease` and turn every way it can end into a job state.

    `batch_id`: the split job whose parts this work reads or writes (a chunk's parent, else
    the job itself); when the work ends the batch, its parts are removed."""
    token = current_lease.set(lease)
    batch = batch_id or lease.parent_id or lease.job_id
    interrupted = False
    try:
        work(lease)
    except LeaseLost:
        lease.abandon()
        _remove_parts_if_ended(batch)
    except PermanentError as exc:
        lease.cleanup()
        _fail(lease, batch, exc.msg)
    except DatabaseBusy as exc:
        if exc.reason == "io":
            # The database's own disk is full or failing (it shares the artifacts' disk): free
            # what this attempt wrote first, so that the failure itself can be written.
            _fail_on_a_failing_database(lease, batch, exc)
        else:
            _later_or_to_the_reaper(lease, exc.msg)
    except TransientError as exc:
        _later_or_to_the_reaper(lease, exc.msg)
    except OSError as exc:
        disk = disk_error(exc)
        if disk is None:
            _later_or_to_the_reaper(lease, describe_os_error(exc))
        else:
            log.error("job %s: %s (%s)", lease.job_id, disk.english(), exc)
            lease.cleanup()  # free what this attempt wrote before writing the failure
            _fail(lease, batch, disk)
    except Exception as exc:
        if unavailable_reason(exc) == "io":
            _fail_on_a_failing_database(lease, batch, exc)
        else:
            log.exception("job %s: unexpected error", lease.job_id)
            reason = f"{exc.__class__.__name__}: {exc}"
            _later_or_to_the_reaper(lease, Msg("unexpected", {"reason": reason}))
    except BaseException:
        # Dramatiq's TimeLimitExceeded or a shutdown: the worker middleware fails the job.
        interrupted = True
        raise
    finally:
        if not interrupted:
            lease.cleanup()
            current_lease.reset(token)
            current_need.set(None)


def describe_os_error(exc: OSError) -> Msg:
    disk = disk_error(exc)
    if disk is not None:
        return disk
    # ENOTDIR: something that is not a folder sits where the artifact directory should be
    # (seen in the integration tests); the same advice applies, "Not a directory" alone does not help.
    if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM, errno.ENOTDIR):
        return Msg("not_writable")
    return Msg("file_error", {"reason": exc.strerror or str(exc)})


def _fail_on_a_failing_database(lease: Lease, batch: str, exc: Exception) -> None:
    """Fail the job whose writes met a database on a full or failing disk (it shares the
    artifacts' disk): this attempt's files go first, room for the failure's own write."""
    lease.cleanup()
    db.session.rollback()
    log.error("job %s: the database could not be written: %s", lease.job_id, exc)
    cause = exc.__cause__ if isinstance(exc, DatabaseBusy) and exc.__cause__ else exc
    full = "full" in str(cause).lower() or "full" in str(exc).lower()
    _fail(lease, batch, disk_full_msg(None) if full else Msg("disk_io_error"))


FAIL_WRITE_TRIES = 6  # over ~10 s: other workers' failing attempts free their files meanwhile


def _fail(lease: Lease, batch: str, msg: Msg) -> None:
    """Write the job's failure (and remove its batch's parts once it has ended). When the
    database's own disk is full even for that, make room — this attempt's files, then the
    failing batch's parts, which nothing will merge — and try again for a few seconds, as the
    other workers of the batch free theirs; then leave it to the reaper (stale heartbeat)."""
    for attempt in range(1, FAIL_WRITE_TRIES + 1):
        try:
            lease.fail(msg)
        except DatabaseBusy as exc:
            db.session.rollback()
            if attempt == FAIL_WRITE_TRIES:
                log.error("job %s: its failure could not be written (%s)", lease.job_id, exc)
                return
            if exc.reason == "io":
                lease.cleanup()
                try:
                    artifacts.store().delete_prefix(batches.part_prefix(batch))
                except OSError as gone:
                    log.warning("job %s: parts not removed: %s", batch, gone)
            log.warning("job %s: failure not written yet (%s), again", lease.job_id, exc)
            time.sleep(0.3 * attempt)  # (a backoff of the engine, not a test's wait)
            continue
        _remove_parts_if_ended(batch)
        return


def _later_or_to_the_reaper(lease: Lease, msg: Msg) -> None:
    """Try again later — when even that cannot be written (a locked or read-only database),
    the job stays `running` and the reaper re-queues it once its heartbeat is stale."""
    try:
        lease.retry_later(msg)
    except DatabaseBusy as again:
        db.session.rollback()
        log.warning("job %s: left to the reaper: %s", lease.job_id, again)


# -- the disk -------------------------------------------------------------------------------------


def free_bytes(path: Path | None = None) -> int:
    """Free bytes (for this user) on the file system of `path` (the artifact directory)."""
    path = path or artifacts.root()
    while not path.exists() and path != path.parent:  # not made yet: its nearest parent
        path = path.parent
    return shutil.disk_usage(path).free


def megabytes(size: int) -> float:
    """For messages: one decimal below 10 MB, whole megabytes above."""
    mb = size / 1_000_000
    return round(mb, 1) if mb < 10 else float(round(mb))


def disk_full_msg(needed: int | None) -> Msg:
    free = free_bytes()
    if needed:
        return Msg("disk_full_sized", {"free": megabytes(free), "needed": megabytes(needed)})
    return Msg("disk_full_free", {"free": megabytes(free)})


def disk_error(exc: OSError) -> Msg | None:
    """The permanent error of a local disk that cannot take the file; None for any other
    OSError (an object store that failed is a StorageError: worth another attempt)."""
    if isinstance(exc, storage.StorageError) or exc.errno not in DISK_ERRNOS:
        return None
    if exc.errno == errno.EIO:
        return Msg("disk_io_error")
    if exc.errno == errno.EDQUOT:
        return Msg("disk_quota", {"free": megabytes(free_bytes())})
    return disk_full_msg(current_need.get())


def require_space(needed: int) -> None:
    """Fail at once (PermanentError) when the artifact disk has less than `needed` bytes free."""
    current_need.set(needed)
    free = free_bytes()
    if needed > free:
        raise PermanentError("disk_full_sized", free=megabytes(free), needed=megabytes(needed))


def _part_sizes(parent_id: str) -> list[int]:
    return [item.size for item in artifacts.store().iter(batches.part_prefix(parent_id))]


def check_space_for_part(parent: Job, part: Part) -> None:
    """Before a chunk renders: room for about as many bytes a unit as its published siblings
    took (nothing to go by before the first one is published)."""
    sizes = _part_sizes(parent.id)
    if not sizes or not parent.chunks_total:
        return
    per_unit = sum(sizes) / len(sizes) / max(parent.progress_total / parent.chunks_total, 1)
    require_space(int(per_unit * (part.stop - part.start)))


def check_space_for_merge(parent: Job) -> None:
    """Before a merge: room for the merged file (about the sum of its parts), plus local
    copies of the parts when the store is remote."""
    sizes = _part_sizes(parent.id)
    local = artifacts.store().local_path(batches.part_prefix(parent.id)) is not None
    require_space(sum(sizes) * (1 if local else 2))


def _merge(kind: DocumentKind) -> Callable[[Lease], None]:
    def work(lease: Lease) -> None:
        parent = db.session.get(Job, lease.job_id)
        assert parent is not None
        check_space_for_merge(parent)
        db.session.commit()
        batches.merge(kind, lease)

    return work


# -- leftovers ------------------------------------------------------------------------------------


def _remove_parts_if_ended(batch_id: str | None) -> None:
    """The parts of a batch that ended (failed, cancelled) serve nothing any more: removed now,
    not at the hourly retention. Checked and removed under the write lock, which a chunk also
    holds to publish its part, so no part lands in a folder being removed."""
    if batch_id is None:
        return
    try:
        with write_txn() as session:
            status = session.scalar(sa.select(Job.status).where(Job.id == batch_id))
            if status in LIVE_STATUSES:
                return
            removed = artifacts.store().delete_prefix(batches.part_prefix(batch_id))
        if removed:
            log.info("job %s ended: %d parts removed", batch_id, removed)
    except Exception:  # the retention run removes them later
        log.exception("job %s: removing the parts of the ended batch failed", batch_id)


def _drop_parts_of_ended_batch(job_id: str) -> None:
    """A message dropped for a chunk of a cancelled or failed batch: the parts go."""
    parent_id = db.session.scalar(sa.select(Job.parent_id).where(Job.id == job_id))
    db.session.commit()
    _remove_parts_if_ended(parent_id)


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
        check_space_for_part(parent, part)
        out = lease.temp_path()
        kind.render(parent, lease, out, part)
        parent_claims = batches.finish_chunk(lease, out, part.index)
        if parent_claims is not None:
            guarded(
                batches.parent_lease(parent.id, parent_claims, kind.suffix),
                _merge(kind),
                batch_id=parent.id,
            )
        return
    if job.chunks_total and job.chunks_done == job.chunks_total:
        _merge(kind)(lease)  # the merge of a previous attempt died half way
        return
    parts = kind.split(job, current_app.config)
    if len(parts) > 1:
        batches.split(lease, job, parts)
        return
    out = lease.temp_path()
    kind.render(job, lease, out, None)
    lease.progress(job.progress_total, "saving", force=True)
    lease.finish(out, kind.media_type)
