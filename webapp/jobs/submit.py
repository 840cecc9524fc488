"""Submit, read, cancel and retry: the engine as people and other code start it.

`enqueue(session, …)` joins the caller's write transaction (the job commits together with
whatever else the caller writes, or not at all); its message goes to the broker after the
commit. `submit` is the same in a transaction of its own.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp import documents
from webapp.db import after_commit, write_txn
from webapp.documents import DocumentKind, Prepared
from webapp.errors import Conflict, Forbidden, InvalidParams, NotFound
from webapp.extensions import db
from webapp.jobs import artifacts, queues, transitions, watch
from webapp.models import JOB_IS_LIVE, Artifact, Job, JobStatus, Origin, User, utcnow

log = logging.getLogger(__name__)

RETRYABLE = (JobStatus.FAILED.value, JobStatus.CANCELLED.value, JobStatus.EXPIRED.value)


def kind_of(name: Any) -> DocumentKind:
    if isinstance(name, DocumentKind):
        return name
    kind = documents.get(name) if isinstance(name, str) else None
    if kind is None:
        raise InvalidParams.field(
            "kind", "unknown_kind", kind=repr(name)[:60], kinds=documents.names()
        )
    return kind


def prepare(kind: DocumentKind, raw: Any, owner: User | None) -> Prepared:
    """Validate, normalise and check the kind's limit (422 with the fields that are wrong)."""
    if not kind.may_submit(owner):
        raise Forbidden("not_allowed")
    prepared = kind.prepare(kind.parse(raw), owner)
    limit = kind.limit(current_app.config)
    if limit is not None and prepared.total > limit:
        raise InvalidParams.field(
            "params", "too_many", total=prepared.total, unit=kind.unit, limit=limit
        )
    return prepared


def input_hash(kind: str, prepared: Prepared) -> str:
    blob = json.dumps(
        {"kind": kind, "params": prepared.params, "data": prepared.data_version},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def reusable_artifact(session: Session, digest: str) -> Artifact | None:
    """A published file for this exact input (anyone's: files are content-addressed), if it
    is still on disk (a file removed by hand is rendered again, not handed out as missing)."""
    # Locked (PostgreSQL): retention, which removes it under the same row lock, waits, then
    # sees it kept; or it removed it first and this finds nothing (SQLite: the write lock).
    artifact = session.scalars(_reusable_statement(), {"digest": digest, "now": utcnow()}).first()
    if artifact is None or not artifacts.exists(artifact.path):
        return None
    return artifact


def keep_artifact(artifact: Artifact) -> None:
    """A job points at this file from now: keep it for the retention period from now."""
    keep = utcnow() + timedelta(days=current_app.config["RETENTION_DAYS"])
    if artifact.expires_at is None or artifact.expires_at < keep:
        artifact.expires_at = keep


def live_twin(
    session: Session, kind: str, owner_id: int | None, subject: str | None, digest: str
) -> Job | None:
    """The live job this one would duplicate: the subject's (whoever asked) or the owner's."""
    shape, values = _twin(kind, owner_id, subject, digest)
    return session.scalars(_twin_statement(shape), values).first()


def look_up(
    session: Session, kind: str, owner_id: int | None, subject: str | None, digest: str
) -> tuple[str | None, bool]:
    """(the live twin's id, whether a file for this input may exist) in one indexed SELECT of
    two ids: no row is loaded for what is not there (a new submit's usual answer)."""
    shape, values = _twin(kind, owner_id, subject, digest)
    row = session.execute(_look_up_statement(shape), {**values, "now": utcnow()}).one()
    return row[0], row[1] is not None


def _twin(
    kind: str, owner_id: int | None, subject: str | None, digest: str
) -> tuple[str, dict[str, Any]]:
    """Which twin statement answers, and its values: the subject's live job, the owner's, or
    (no owner, no subject) the system's."""
    if subject is not None:
        return "subject", {"digest": digest, "kind": kind, "subject": subject}
    if owner_id is not None:
        return "owner", {"digest": digest, "owner_id": owner_id}
    return "system", {"digest": digest}


# The lookups of a submit are built once, their values bound per call: building the expressions
# each time was a large part of a submit's CPU (docs/benchmarks.md, "Web processes and threads;
# the submit's statements built once").


def _reusable_where() -> list[Any]:
    expires = Artifact.expires_at
    return [
        Artifact.input_hash == sa.bindparam("digest"),
        sa.or_(Artifact.pinned, expires.is_(None), expires > sa.bindparam("now")),
    ]


def _twin_where(shape: str) -> list[Any]:
    where = [
        Job.input_hash == sa.bindparam("digest"),
        Job.parent_id.is_(None),
        JOB_IS_LIVE,
    ]
    if shape == "subject":
        return [*where, Job.kind == sa.bindparam("kind"), Job.subject == sa.bindparam("subject")]
    owner = Job.owner_id == sa.bindparam("owner_id") if shape == "owner" else Job.owner_id.is_(None)
    return [*where, owner, Job.subject.is_(None)]


@functools.cache
def _reusable_statement() -> Any:
    return sa.select(Artifact).where(*_reusable_where()).with_for_update()


@functools.cache
def _twin_statement(shape: str) -> Any:
    return sa.select(Job).where(*_twin_where(shape))


@functools.cache
def _look_up_statement(shape: str) -> Any:
    twin = sa.select(Job.id).where(*_twin_where(shape)).limit(1).scalar_subquery()
    file = sa.select(Artifact.id).where(*_reusable_where()).limit(1).scalar_subquery()
    return sa.select(twin, file)


def load_after_commit(session: Session, job: Job) -> None:
    """Read `job` back as committed before any message for it goes out (register this first):
    a worker may claim it the moment it is sent, and the caller answers with the job as it was
    committed (the API's 202 and `queued` for a new job), not with whatever the worker made of
    it meanwhile. A session that keeps its objects across the commit (`submit`) holds it as
    committed already: nothing to read."""
    if session.expire_on_commit:
        after_commit(session, lambda: session.refresh(job))


@contextmanager
def kept_across_commits() -> Iterator[None]:
    """The request's session keeps what it loaded across the commits of the block: the owner
    read by the token check, the job as it was inserted (every column is set in Python). Two
    SELECTs fewer per submit, on the path a busy API hits hardest (docs/benchmarks.md)."""
    session = db.session()
    before, session.expire_on_commit = session.expire_on_commit, False
    try:
        yield
    finally:
        session.expire_on_commit = before


def send_after_commit(session: Session, job_id: str, *, chunk: bool = False) -> None:
    """The job's message goes to the broker once the transaction commits."""
    after_commit(session, lambda: send(job_id, chunk=chunk))


def send(job_id: str, *, chunk: bool = False, delay_s: float = 0) -> bool:
    """Send now. A failed send marks the job unsent, so the reaper's next pass sends it."""
    if queues.send(queues.CHUNK if chunk else queues.RENDER, job_id, delay_s=delay_s):
        return True
    with write_txn() as session:
        transitions.mark_sent(session, [job_id], None)
    return False


def enqueue(
    session: Session,
    kind_name: Any,
    params: Any,
    *,
    owner: User | None = None,
    origin: Origin = Origin.USER,
    prepared: Prepared | None = None,
    batch_id: str | None = None,
    reuse: bool = True,
    looked_up: bool = False,
) -> tuple[Job, bool]:
    """Create the job inside the caller's transaction (or return its live twin). → (job, created)

    Validation reads in the same transaction. The message is sent after the commit. A bulk
    job's document (`batch_id`) waits in the bulk queue; `reuse=False` renders it again even
    when an identical file exists (a regeneration after a template fix). `looked_up`: the
    caller found no twin and no reusable file just before its write transaction, and a unique
    index refuses a twin that went live since (`submit`); nothing is read here again."""
    kind = kind_of(kind_name)
    prepared = prepared or prepare(kind, params, owner)
    digest = input_hash(kind.name, prepared)
    subject = kind.subject(prepared.params)
    owner_id = owner.id if owner is not None else None
    if not looked_up:
        twin = live_twin(session, kind.name, owner_id, subject, digest)
        if twin is not None:
            return twin, False
    now = utcnow()
    job = Job(
        owner_id=owner_id,
        origin=origin.value,
        kind=kind.name,
        params=prepared.params,
        summary=prepared.summary,
        subject=subject,
        input_hash=digest,
        unit=kind.unit,
        status=JobStatus.QUEUED.value,
        progress_total=prepared.total,
        step_code="waiting",
        max_attempts=current_app.config["JOB_MAX_ATTEMPTS"],
        created_at=now,
        sent_at=now,
        batch_id=batch_id,
    )
    job.file_name = kind.file_name(job)
    artifact = reusable_artifact(session, digest) if reuse and not looked_up else None
    if artifact is not None:
        keep_artifact(artifact)
        job.status, job.artifact_id, job.finished_at = JobStatus.DONE.value, artifact.id, now
        job.progress_done, job.step_code, job.sent_at = job.progress_total, "ready", None
    transitions.insert(session, job)
    load_after_commit(session, job)
    if job.status == JobStatus.QUEUED:
        # No "seen" mark: a job younger than READY_MAIL_IDLE_S counts as watched (hooks.py), as
        # a mark written now would (one Redis round trip less a submit).
        send_after_commit(session, job.id, chunk=batch_id is not None)
    return job, True


def submit(
    owner: User | None, kind_name: Any, params: Any, *, origin: Origin = Origin.USER
) -> tuple[Job, bool]:
    """enqueue() in a transaction of its own; 20 identical concurrent submits make one job.

    The twin and the reusable file are looked up before the write transaction: a repeated
    submit answers without writing, and the write lock (every writer of the database queues
    on it) is held for the insert alone — holding it for the lookups too made every submit of
    a busy API wait for the others' (docs/benchmarks.md). A twin that goes live between the
    lookup and the insert is refused by the live-job unique indexes (below); a file published
    meanwhile is only rendered once more. A system job without a subject (no owner) has no
    index to refuse its twin: it is looked up inside the transaction."""
    kind = kind_of(kind_name)
    prepared = prepare(kind, params, owner)
    digest = input_hash(kind.name, prepared)
    subject = kind.subject(prepared.params)
    owner_id = owner.id if owner is not None else None
    guarded = owner_id is not None or subject is not None
    try:
        with kept_across_commits():
            looked_up = False
            if guarded:
                twin_id, maybe_file = look_up(db.session(), kind.name, owner_id, subject, digest)
                twin = db.session.get(Job, twin_id) if twin_id is not None else None
                if twin is not None:
                    return twin, False
                looked_up = not maybe_file  # else enqueue looks again, in the transaction
            with write_txn() as session:
                job, created = enqueue(
                    session,
                    kind,
                    params,
                    owner=owner,
                    origin=origin,
                    prepared=prepared,
                    looked_up=looked_up,
                )
                if created and owner is not None and "staff" not in kind.roles:
                    from webapp import audit  # an admin's own kind of work: in the audit log

                    audit.record(
                        session, owner, f"start.{kind.name}", prepared.summary, {"job": job.id}
                    )
    except IntegrityError:
        # A concurrent identical submit won the unique index since the lookup: return its job.
        twin = live_twin(db.session(), kind.name, owner_id, subject, digest)
        if twin is None:
            raise
        return twin, False
    if created:
        log.info(
            "job %s submitted: kind=%s total=%d status=%s",
            job.id,
            job.kind,
            job.progress_total,
            job.status,
        )
    return job, created


def may_read(user: User, job: Job) -> bool:
    """Its owner, an admin, or — for a document with a subject — anyone who may submit the kind."""
    if job.owner_id == user.id or user.is_admin:
        return True
    kind = documents.get(job.kind)
    return job.subject is not None and kind is not None and kind.may_submit(user)


def get_for(user: User, job_id: Any, *, control: bool = False) -> Job:
    """The job if `user` may see it; chunks are never visible. With `control` (cancel, retry)
    only its owner or an admin: reading a shared document is not steering everyone's job."""
    job = db.session.get(Job, job_id) if isinstance(job_id, str) and len(job_id) <= 24 else None
    if job is None or job.parent_id is not None or not may_read(user, job):
        raise NotFound("not_found")
    if control and job.owner_id != user.id and not user.is_admin:
        raise Forbidden("not_allowed_control")
    return job


def list_for(
    user: User,
    *,
    status: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    everyone: bool = False,
) -> list[Job]:
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
    with write_txn() as session:
        changed = transitions.cancel(session, job.id)
    db.session.refresh(job)
    if not changed:
        raise Conflict("already_final")
    log.info("job %s cancelled", job.id)
    return job


def retry(job: Job, by: User | None = None) -> Job:
    """Run a failed, cancelled or expired job again with the current data (as its owner, or,
    for a system job, as `by`: the admin who asked)."""
    if job.status not in RETRYABLE:
        raise Conflict("not_retryable")
    kind = kind_of(job.kind)
    prepared = prepare(kind, job.params, job.owner or by)
    digest = input_hash(kind.name, prepared)
    try:
        return _retry(job, prepared, digest)
    except IntegrityError:
        # An identical submit went live meanwhile (the unique index): answer that job.
        twin = live_twin(db.session(), job.kind, job.owner_id, job.subject, digest)
        if twin is None:
            raise
        return twin


def _retry(job: Job, prepared: Prepared, digest: str) -> Job:
    with write_txn() as session:
        twin = live_twin(session, job.kind, job.owner_id, job.subject, digest)
        if twin is not None:
            return twin
        session.execute(sa.delete(Job).where(Job.parent_id == job.id))
        artifact = reusable_artifact(session, digest)
        if artifact is not None:
            keep_artifact(artifact)
        if not transitions.retry(
            session,
            job.id,
            input_hash=digest,
            summary=prepared.summary,
            total=prepared.total,
            artifact_id=artifact.id if artifact else None,
        ):
            raise Conflict("not_retryable")
        load_after_commit(session, job)
        if artifact is None:
            send_after_commit(session, job.id, chunk=job.batch_id is not None)
    watch.seen(job.id)
    log.info("job %s retried", job.id)
    return job
