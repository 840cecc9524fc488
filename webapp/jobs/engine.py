"""Submit, send, cancel and retry: the transitions a user starts."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from dramatiq import Message
from flask import current_app
from sqlalchemy.exc import IntegrityError

from webapp import documents
from webapp.documents import DocumentKind, Prepared
from webapp.extensions import db
from webapp.jobs.db import write_txn
from webapp.jobs.errors import Conflict, InvalidParams, NotFound
from webapp.models import LIVE_STATUSES, Artifact, Job, JobStatus, User, utcnow

log = logging.getLogger(__name__)

QUEUE = "pressroom"
RENDER_ACTOR = "render_job"
# Chunks of big batches wait in their own queue, drawn by a lower-priority actor: a worker that
# holds a chunk message and a whole job's message takes the job first, so one person's small
# job never waits behind another's 50,000 labels.
BULK_QUEUE = "pressroom-bulk"
CHUNK_ACTOR = "render_chunk"
QUEUES = (QUEUE, BULK_QUEUE)


def input_hash(kind: str, prepared: Prepared) -> str:
    blob = json.dumps({"kind": kind, "params": prepared.params, "data": prepared.data_version},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def kind_of(name: Any) -> DocumentKind:
    kind = documents.get(name) if isinstance(name, str) else None
    if kind is None:
        raise InvalidParams(f"Unknown kind {name!r}; use one of: {', '.join(documents.names())}.",
                            field="kind")
    return kind


def prepare(kind: DocumentKind, params: Any, owner: User | None) -> Prepared:
    prepared = kind.prepare(params, owner)
    limit = current_app.config["MAX_LABELS"]
    if prepared.total > limit:
        raise InvalidParams(f"This batch has {prepared.total:,} labels; the limit is {limit:,}. "
                            "Narrow the filters or print fewer copies.", field="params")
    return prepared


def _reusable_artifact(session: Any, digest: str) -> Artifact | None:
    return session.scalars(sa.select(Artifact).where(
        Artifact.input_hash == digest,
        sa.or_(Artifact.expires_at.is_(None), Artifact.expires_at > utcnow()))).first()


def _live_twin(session: Any, owner_id: int, digest: str) -> Job | None:
    return session.scalars(sa.select(Job).where(
        Job.owner_id == owner_id, Job.input_hash == digest, Job.parent_id.is_(None),
        Job.status.in_(LIVE_STATUSES))).first()


def attach_artifact(job: Job, artifact: Artifact) -> None:
    """Point a job at a published file and keep the file for the retention period from now."""
    now = utcnow()
    job.artifact = artifact
    job.status = JobStatus.DONE
    job.finished_at = now
    job.progress_done = job.progress_total
    job.progress_step = "Ready"
    keep = now + timedelta(days=current_app.config["RETENTION_DAYS"])
    if artifact.expires_at is None or artifact.expires_at < keep:
        artifact.expires_at = keep


def submit(owner: User, kind_name: Any, params: Any) -> tuple[Job, bool]:
    """Create a job (or return the owner's identical live one); commit, then send. → (job, created)"""
    kind = kind_of(kind_name)
    prepared = prepare(kind, params, owner)
    digest = input_hash(kind.name, prepared)
    try:
        with write_txn() as session:
            twin = _live_twin(session, owner.id, digest)
            if twin is not None:
                return twin, False
            job = Job(owner_id=owner.id, kind=kind.name, params=prepared.params,
                      summary=prepared.summary, input_hash=digest, status=JobStatus.QUEUED,
                      progress_total=prepared.total, progress_step="Waiting for a worker",
                      max_attempts=current_app.config["JOB_MAX_ATTEMPTS"], created_at=utcnow())
            job.file_name = kind.file_name(job)
            artifact = _reusable_artifact(session, digest)
            if artifact is not None:
                attach_artifact(job, artifact)
            else:
                job.sent_at = job.created_at
            session.add(job)
    except IntegrityError:
        # A concurrent identical submit won the unique index (PostgreSQL path): return its job.
        twin = _live_twin(db.session, owner.id, digest)
        if twin is None:
            raise
        return twin, False
    if job.status == JobStatus.QUEUED:
        send(job.id)
    log.info("job %s submitted: kind=%s total=%d status=%s", job.id, job.kind,
             job.progress_total, job.status)
    return job, True


def broker():  # type: ignore[no-untyped-def]
    return current_app.extensions["pressroom.broker"]


def send(job_id: str, delay_s: float = 0, *, chunk: bool = False) -> bool:
    """Send the job id to the workers. A failed send is logged; the reaper sends it again."""
    message = Message(queue_name=BULK_QUEUE if chunk else QUEUE,
                      actor_name=CHUNK_ACTOR if chunk else RENDER_ACTOR, args=(job_id,),
                      kwargs={}, options={})
    try:
        broker().enqueue(message, delay=int(delay_s * 1000) or None)
    except Exception as exc:  # redis down, timeouts: the row is committed, the reaper re-sends
        log.warning("job %s: send failed (%s); the reaper will re-send it", job_id, exc)
        with write_txn() as session:
            session.execute(sa.update(Job).where(Job.id == job_id).values(sent_at=None))
        return False
    return True


def get_for(user: User, job_id: str) -> Job:
    """The job if `user` may see it (its owner, or an admin); chunks are never visible."""
    job = db.session.get(Job, job_id) if isinstance(job_id, str) else None
    if job is None or job.parent_id is not None or (job.owner_id != user.id and not user.is_admin):
        raise NotFound("No such job.")
    return job


def list_for(user: User, *, status: str | None = None, kind: str | None = None,
             limit: int = 50, everyone: bool = False) -> list[Job]:
    query = sa.select(Job).where(Job.parent_id.is_(None))
    if not (everyone and user.is_admin):
        query = query.where(Job.owner_id == user.id)
    if status:
        query = query.where(Job.status == status)
    if kind:
        query = query.where(Job.kind == kind)
    query = query.order_by(Job.created_at.desc(), Job.id).limit(limit)
    return list(db.session.scalars(query))


def cancel(job: Job) -> Job:
    """Cancel a queued or running job; its worker notices at its next write and stops."""
    now = utcnow()
    with write_txn() as session:
        changed = session.execute(sa.update(Job).where(
            sa.or_(Job.id == job.id, Job.parent_id == job.id), Job.status.in_(LIVE_STATUSES)
        ).values(status=JobStatus.CANCELLED, finished_at=now, progress_step="Cancelled")).rowcount
    db.session.refresh(job)
    if not changed:
        raise Conflict(f"This job is already {job.status}; there is nothing to cancel.")
    log.info("job %s cancelled", job.id)
    return job


RETRYABLE = (JobStatus.FAILED.value, JobStatus.CANCELLED.value, JobStatus.EXPIRED.value)


def retry(job: Job) -> Job:
    """Run a failed, cancelled or expired job again with the current data."""
    if job.status not in RETRYABLE:
        raise Conflict(f"This job is {job.status}; only failed, cancelled or expired jobs can be retried.")
    kind = kind_of(job.kind)
    prepared = prepare(kind, job.params, job.owner)
    digest = input_hash(kind.name, prepared)
    with write_txn() as session:
        twin = _live_twin(session, job.owner_id, digest)
        if twin is not None:
            return twin
        session.execute(sa.delete(Job).where(Job.parent_id == job.id))
        job = session.get(Job, job.id)
        if job is None or job.status not in RETRYABLE:
            raise NotFound("No such job.")
        job.input_hash = digest
        job.summary = prepared.summary
        job.status = JobStatus.QUEUED
        job.attempts = 0
        job.error = None
        job.artifact = None
        job.progress_done = 0
        job.progress_total = prepared.total
        job.progress_step = "Waiting for a worker"
        job.started_at = job.finished_at = job.heartbeat_at = None
        job.chunks_total = job.chunks_done = 0
        job.worker = None
        job.sent_at = utcnow()
        artifact = _reusable_artifact(session, digest)
        if artifact is not None:
            attach_artifact(job, artifact)
    if job.status == JobStatus.QUEUED:
        send(job.id)
    log.info("job %s retried", job.id)
    return job
