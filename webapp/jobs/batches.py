"""Big jobs: split into internal chunks rendered in parallel, fan-in, merge by the kind.

Chunks are rows with a `parent_id`, never listed or deduplicated on their own. Each finished
chunk publishes its part and counts itself on the parent with one UPDATE … RETURNING; the
chunk that completes the set merges the parts (the kind's `merge`) under a lease on the parent.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import sqlalchemy as sa

from webapp.db import write_txn
from webapp.documents import DocumentKind, Part
from webapp.errors import LeaseLost, PermanentError
from webapp.extensions import db
from webapp.jobs import artifacts, transitions
from webapp.jobs.lease import Lease
from webapp.jobs.submit import send_after_commit
from webapp.models import Job, JobStatus, new_id, utcnow

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
        shutil.rmtree(part_dir(job.id), ignore_errors=True)
    log.info("job %s split into %d chunks", job.id, len(parts))


def parts_root() -> Path:
    return artifacts.root() / "chunks"


def part_dir(parent_id: str) -> Path:
    return parts_root() / parent_id


def part_path(parent_id: str, index: int, suffix: str) -> Path:
    return part_dir(parent_id) / f"{index:05d}{suffix}"


def finish_chunk(lease: Lease, out: Path, index: int) -> int | None:
    """Publish the part and count it on the parent. → the parent's claim when this chunk
    completed the set (this worker merges under it), else None."""
    assert lease.parent_id is not None
    with write_txn() as session:
        counted = transitions.chunk_done(
            session, lease.job_id, lease.claims, lease.parent_id, lease.worker
        )
        if counted is None:
            raise LeaseLost(lease.job_id)
        target = part_path(lease.parent_id, index, lease.suffix)
        artifacts.publish(out, str(target.relative_to(artifacts.root())))
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
    paths = [part_path(parent.id, i, kind.suffix) for i in range(parent.chunks_total)]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise PermanentError("parts_missing", parts=", ".join(missing))
    out = lease.temp_path()
    kind.merge(parent, lease, paths, out)
    lease.finish(out, kind.media_type)
    with write_txn() as session:
        session.execute(sa.delete(Job).where(Job.parent_id == parent.id))
    shutil.rmtree(part_dir(parent.id), ignore_errors=True)
