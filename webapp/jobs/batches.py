"""Big jobs: split into internal chunks rendered in parallel, fan-in, merge by the kind.

Chunks are rows with a `parent_id`, never listed or deduplicated on their own. Each finished
chunk publishes its part and counts itself on the parent with one UPDATE … RETURNING; the
chunk that completes the set merges the parts (the kind's `merge`) under a lease on the parent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from webapp.db import write_txn
from webapp.documents import DocumentKind, Part
from webapp.errors import LeaseLost, PermanentError
from webapp.extensions import db
from webapp.jobs import artifacts, transitions
from webapp.jobs.lease import Lease
from webapp.jobs.submit import send_after_commit
from webapp.models import LIVE_STATUSES, Job, JobStatus, new_id, utcnow

log = logging.getLogger(__name__)


def split(lease: Lease, job: Job, parts: list[Part]) -> None:
    """Queue one internal chunk per part; the parent stays running until the last one merges."""
    now = utcnow()
    with write_txn() as session:
        if not transitions.split(session, job.id, lease.claims, len(parts)):
            raise LeaseLost(job.id)
        session.execute(sa.delete(Job).where(Job.parent_id == job.id))
        for part in parts:
            chunk = Job(
                id=new_id(),
                owner_id=job.owner_id,
                origin=job.origin,
                kind=job.kind,
                params={"part": {"index": part.index, "start": part.start, "stop": part.stop}},
                summary={},
                input_hash=None,
                status=JobStatus.QUEUED.value,
                unit=job.unit,
                parent_id=job.id,
                chunk_index=part.index,
                progress_total=part.stop - part.start,
                max_attempts=job.max_attempts,
                created_at=now,
                sent_at=now,
                step_code="waiting",
            )
            transitions.insert(session, chunk)
            send_after_commit(session, chunk.id, chunk=True)
        # Parts published by an earlier attempt (cancelled or failed, then retried with
        # possibly changed data) must not be merged into this one: part paths are per index,
        # not per content, and publish() keeps an existing file. Old chunks can no longer
        # publish (their rows are gone, so their compare-and-set fails).
        artifacts.store().delete_prefix(part_prefix(job.id))
    log.info("job %s split into %d chunks", job.id, len(parts))


def parts_root() -> Path:
    return artifacts.root() / "chunks"


def part_dir(parent_id: str) -> Path:
    return parts_root() / parent_id


def part_path(parent_id: str, index: int, suffix: str) -> Path:
    return part_dir(parent_id) / f"{index:05d}{suffix}"


def part_prefix(parent_id: str) -> str:
    """The store's keys of a split job's parts (the same folder on local disk)."""
    return f"chunks/{parent_id}/"


def part_key(parent_id: str, index: int, suffix: str) -> str:
    return f"{part_prefix(parent_id)}{index:05d}{suffix}"


def finish_chunk(lease: Lease, out: Path, index: int) -> int | None:
    """Publish the part and count it on the parent. → the parent's claim when this chunk
    completed the set (this worker merges under it), else None."""
    assert lease.parent_id is not None
    key = part_key(lease.parent_id, index, lease.suffix)
    with write_txn() as session:
        counted = transitions.chunk_done(
            session, lease.job_id, lease.claims, lease.parent_id, lease.worker
        )
        if counted is None:
            raise LeaseLost(lease.job_id)
        # Written only under a lease that holds, over whatever is at the index: a part's key
        # is its position, and an attempt that lost its lease must not leave its bytes there
        # (uploaded before the check, a stale part would be kept and merged: S3's put keeps an
        # existing key). On S3 this uploads inside the transaction: parts are small.
        artifacts.publish_part(out, key)
    done, total, parent_claims = counted
    return parent_claims if done == total else None


def parent_lease(parent_id: str, claims: int, suffix: str) -> Lease:
    """The lease the worker that finished the last chunk holds on the parent while it merges."""
    parent = db.session.get(Job, parent_id)
    assert parent is not None
    db.session.commit()
    return Lease.start(
        parent.id,
        claims,
        parent.attempts,
        parent.max_attempts,
        None,
        suffix,
        min_interval=0.0,
    )


def merge(kind: DocumentKind, lease: Lease) -> None:
    """Merge the parent's parts in order (the kind's merge) and publish the parent's file."""
    parent = db.session.get(Job, lease.job_id)
    assert parent is not None
    lease.progress(parent.progress_total, "merging_parts", force=True, parts=parent.chunks_total)
    # Merged on local disk: the parts themselves there, else downloaded into temp files.
    paths, missing = [], []
    for index in range(parent.chunks_total):
        key = part_key(parent.id, index, kind.suffix)
        try:
            paths.append(artifacts.local_copy(key, lease.temp_path()))
        except FileNotFoundError:
            missing.append(key.rsplit("/", 1)[1])
    if missing:
        raise PermanentError("parts_missing", parts=", ".join(missing))
    out = lease.temp_path()
    kind.merge(parent, lease, paths, out)
    lease.finish(out, kind.media_type)
    with write_txn() as session:
        session.execute(sa.delete(Job).where(Job.parent_id == parent.id))
    artifacts.store().delete_prefix(part_prefix(parent.id))


# -- bulk work over many documents (a regeneration) ----------------------------------------------

FAN_OUT_BATCH = 200
DOCUMENT_ENDS = (
    JobStatus.DONE,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)  # documents queued per write transaction: staff submits never wait long


def child_counts(session: Any, batch_id: str) -> dict[str, int]:
    return dict(
        session.execute(
            sa.select(Job.status, sa.func.count(Job.id))
            .where(Job.batch_id == batch_id)
            .group_by(Job.status)
        ).all()
    )


def items_of(session: Any, job: Job) -> dict[str, int]:
    """{done, failed, skipped} of a bulk job, counted from its documents as they are now."""
    counts = child_counts(session, job.id)
    skipped = (job.items or {}).get("skipped", 0)
    failed = sum(
        counts.get(s, 0) for s in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED)
    )
    return {"done": counts.get(JobStatus.DONE, 0), "failed": failed, "skipped": skipped}


def run_bulk(kind: DocumentKind, lease: Lease, job: Job) -> None:
    """First run: queue the documents. Later (resumed when the last one ended, or re-queued by
    the reaper): write the report once none is live any more."""
    counts = child_counts(db.session, job.id)
    db.session.commit()
    if not job.chunks_total:
        _fan_out(kind, lease, job)
        return
    if any(counts.get(s, 0) for s in (JobStatus.QUEUED, JobStatus.RUNNING)):
        return  # the last live document resumes it
    _report(kind, lease, job)


def _fan_out(kind: DocumentKind, lease: Lease, job: Job) -> None:
    from webapp.errors import JobError
    from webapp.jobs.submit import enqueue, input_hash, kind_of, live_twin, reusable_artifact
    from webapp.models import Origin

    force = bool(job.params.get("force"))
    wanted = list(kind.children(job))
    # A fan-out that died half way goes on where it stopped.
    queued = set(db.session.scalars(sa.select(Job.input_hash).where(Job.batch_id == job.id)))
    db.session.commit()
    children, skipped = len(queued), 0
    for start in range(0, len(wanted), FAN_OUT_BATCH):
        with write_txn() as session:
            for name, params in wanted[start : start + FAN_OUT_BATCH]:
                target = kind_of(name)
                try:
                    prepared = target.prepare(target.parse(params), None)
                except JobError:
                    skipped += 1  # no longer a document (e.g. the record changed): nothing to make
                    continue
                digest = input_hash(target.name, prepared)
                if digest in queued:
                    continue
                subject = target.subject(prepared.params)
                if (not force and reusable_artifact(session, digest)) or live_twin(
                    session, target.name, None, subject, digest
                ):
                    skipped += 1  # unchanged (same input, file present), or being made now
                    continue
                enqueue(
                    session,
                    target,
                    params,
                    origin=Origin.REGENERATION,
                    prepared=prepared,
                    batch_id=job.id,
                    reuse=not force,
                )
                queued.add(digest)
                children += 1
        done = min(start + FAN_OUT_BATCH, len(wanted))
        lease.progress(0, "queuing_documents", force=True, count=done, total=len(wanted))
    with write_txn() as session:
        if not transitions.fan_out(session, job.id, lease.claims, children, skipped):
            raise LeaseLost(job.id)
        ended = session.scalar(sa.select(Job.chunks_done).where(Job.id == job.id)) or 0
    log.info("bulk job %s: %d documents queued, %d skipped", job.id, children, skipped)
    if ended >= children:  # nothing to wait for (or every document ended while queuing)
        db.session.expire_all()
        _report(kind, lease, db.session.get(Job, job.id) or job)


def _report(kind: DocumentKind, lease: Lease, job: Job) -> None:
    out = lease.temp_path()
    lease.progress(job.progress_total, "writing_file", force=True)
    kind.merge(job, lease, [], out)
    lease.finish(out, kind.media_type)


def _document_ended(
    name: str,
    *,
    session: Any,
    old: str | None,
    new: str,
    batch_id: str | None = None,
    **_: Any,
) -> None:
    """A bulk job's document ended (done, failed, cancelled): count it; the last one resumes
    the bulk job so a worker writes its report."""
    if batch_id is None or old not in LIVE_STATUSES or new not in DOCUMENT_ENDS:
        return
    counted = transitions.item_ended(session, batch_id)
    if counted is None:
        return
    ended, total = counted
    if total and ended >= total:
        from webapp.db import after_commit
        from webapp.jobs.submit import send

        def resume() -> None:
            with write_txn() as own:
                resumed = transitions.resume(own, batch_id)
            if resumed:
                send(batch_id)

        after_commit(session, resume)


def init_app() -> None:
    transitions.job_changed.connect(_document_ended, weak=False)
