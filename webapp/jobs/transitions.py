"""Every change of a job's state: named transitions from a from→to table, one compare-and-set each.

Nothing else in the code base issues an UPDATE on `jobs`. Each transition runs inside the
caller's write transaction (webapp/db.py `write_txn`) and, for every row it changed, sends the
`job_changed` signal with the old and the new state, in that same transaction: a receiver (a
kind's hook writing its mail to the outbox, metrics, the audit log) commits together with the
change or not at all. A transition that matches no row changed nothing; callers that hold a
lease treat that as "the job moved on without me" (cancelled, re-queued, failed) and stop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from blinker import Namespace
from sqlalchemy.orm import Session, make_transient_to_detached

from webapp.messages import Msg
from webapp.models import Job, JobStatus, utcnow

Q, R, D = JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.DONE.value
F, C, E = JobStatus.FAILED.value, JobStatus.CANCELLED.value, JobStatus.EXPIRED.value

#: name → (the states it may start from, the state it leads to). `None` is "no row yet".
TABLE: dict[str, tuple[tuple[str | None, ...], str]] = {
    "submit": ((None,), Q),  # a new job
    "reuse": ((None,), D),  # a new job whose identical file exists already
    "send": ((Q,), Q),  # (re-)sent to the broker, or marked unsent
    "claim": ((Q,), R),  # a worker takes it: attempts + 1
    "progress": ((R,), R),  # progress, heartbeat, a split into chunks, a chunk counted
    "finish": ((R,), D),  # its file is published
    "fail": ((Q, R), F),  # a permanent error, or out of attempts
    "retry_later": ((R,), Q),  # a transient error: again after a delay
    "reap": ((R,), Q),  # its worker died or went silent
    "cancel": ((Q, R), C),  # by a person, or a chunk whose batch ended
    "retry": ((F, C, E), Q),  # run again by a person
    "retry_reuse": ((F, C, E), D),  # run again, and an identical file exists
    "expire": ((D,), E),  # retention removed its file
    "resume": ((R,), Q),  # a bulk job whose documents all ended: a worker writes its report
}

signals = Namespace()
#: Sent for each row a transition changed: sender=name, session, job_id, kind, old, new,
#: parent_id (set for the internal chunks of a big job, which kinds' hooks never see).
job_changed = signals.signal("job-changed")


def _step(msg: Msg | None) -> dict[str, Any]:
    return {"step_code": msg.code, "step_params": msg.params} if msg else {}


def _error(msg: Msg | None) -> dict[str, Any]:
    return {"error_code": msg.code if msg else None, "error_params": msg.params if msg else None}


#: What every transition's signal carries of the row as it changed it (receivers need no query).
SIGNALLED = (
    Job.id,
    Job.kind,
    Job.parent_id,
    Job.batch_id,
    Job.owner_id,
    Job.origin,
    Job.created_at,
    Job.started_at,
)


def apply(
    session: Session,
    name: str,
    where: Sequence[Any],
    values: dict[str, Any],
    returning: Iterable[Any] = (),
) -> list[Any]:
    """Run transition `name` on the jobs matching `where`: one compare-and-set per start state."""
    froms, to = TABLE[name]
    rows: list[Any] = []
    for old in froms:
        assert old is not None, f"{name} creates rows: use insert()"
        statement = (
            sa.update(Job)
            .where(*where, Job.status == old)
            .values(status=to, **values)
            .returning(*SIGNALLED, *returning)
        )
        for row in session.execute(statement).all():
            rows.append(row)
            job_changed.send(
                name,
                session=session,
                job_id=row.id,
                old=old,
                new=to,
                **{column.key: getattr(row, column.key) for column in SIGNALLED[1:]},
            )
    return rows


_JOB_COLUMNS = tuple(Job.__table__.columns)
_INSERT_JOB = sa.insert(cast(sa.Table, Job.__table__))


def _insert_row(session: Session, job: Job) -> None:
    """The new row through one cached Core INSERT, then `job` joins the session as that row.

    The unit of work's flush did the same in ~0.2 ms more, inside the write lock every writer
    queues on (docs/benchmarks.md "Garbage collector pauses and the write lock"). The columns'
    Python defaults are applied here, as the flush would; a column left None is left out (NULL,
    for a JSON column too)."""
    values = {}
    for column in _JOB_COLUMNS:
        value = getattr(job, column.key)
        if value is None and column.default is not None:
            default = column.default
            value = default.arg(None) if default.is_callable else default.arg
        setattr(job, column.key, value)  # every column loaded: nothing is read back
        if value is not None:
            values[column.key] = value
    session.execute(_INSERT_JOB, values)
    make_transient_to_detached(job)
    session.add(job)


def insert(session: Session, job: Job) -> None:
    """submit / reuse: the new row, queued or (an identical file exists) done at once."""
    name = "reuse" if job.status == D else "submit"
    assert TABLE[name][1] == job.status
    _insert_row(session, job)
    job_changed.send(
        name,
        session=session,
        job_id=job.id,
        old=None,
        new=job.status,
        **{column.key: getattr(job, column.key) for column in SIGNALLED[1:]},
    )


def _within_total(value: Any) -> Any:
    """`value` for progress_done, kept within 0..progress_total in SQL, whatever a re-run chunk,
    a retry or a late count adds or takes back (a batch once read 19,400 of 10,200)."""
    return sa.case((value > Job.progress_total, Job.progress_total), (value < 0, 0), else_=value)


def _chunk_progress(session: Session, job_id: str, claims: int) -> int:
    """What a running chunk has added to its parent, read in the write transaction that takes
    it back (a snapshot read before it may be older: the chunk kept counting meanwhile)."""
    done = session.scalar(
        sa.select(Job.progress_done)
        .where(*_lease(job_id, claims), Job.status == R)
        .with_for_update()
    )
    return int(done or 0)


def _lease(job_id: str, claims: int) -> list[Any]:
    """A worker's lease: the row as its claim left it (`claims` is never reset, `attempts` is)."""
    return [Job.id == job_id, Job.claims == claims]


# -- sending ------------------------------------------------------------------------------------


def mark_sent(session: Session, job_ids: Sequence[str], at: datetime | None) -> int:
    """Record a send (or, with None, a failed one the reaper should repeat)."""
    if not job_ids:
        return 0
    return len(apply(session, "send", [Job.id.in_(job_ids)], {"sent_at": at}))


def unsent(session: Session, before: datetime) -> list[Any]:
    """Queued jobs whose last send is older than `before` (or failed): (id, parent_id,
    batch_id)."""
    return list(
        session.execute(
            sa.select(Job.id, Job.parent_id, Job.batch_id).where(
                Job.status == Q, sa.or_(Job.sent_at.is_(None), Job.sent_at < before)
            )
        ).all()
    )


# -- a worker's lease ---------------------------------------------------------------------------


def claim(session: Session, job_id: str, worker: str) -> Any | None:
    """queued → running, attempts + 1. → (claims, attempts, max_attempts, parent_id, batch_id)
    or None."""
    now = utcnow()
    rows = apply(
        session,
        "claim",
        [Job.id == job_id],
        {
            "attempts": Job.attempts + 1,
            "claims": Job.claims + 1,
            "worker": worker,
            "heartbeat_at": now,
            "started_at": sa.func.coalesce(Job.started_at, now),
            **_step(Msg("starting")),
        },
        returning=(Job.claims, Job.attempts, Job.max_attempts),
    )
    if not rows:
        return None
    row = rows[0]
    if row.parent_id:  # the parent shows the highest attempt of its chunks
        apply(
            session,
            "progress",
            [Job.id == row.parent_id, Job.attempts < row.attempts],
            {"attempts": row.attempts},
        )
    return row


def progress(
    session: Session,
    job_id: str,
    claims: int,
    done: int,
    step: Msg | None,
    *,
    parent_id: str | None = None,
    delta: int = 0,
    items: dict[str, int] | None = None,
) -> bool:
    """Progress and heartbeat under the lease; a chunk also moves its parent by `delta`; a
    job over many records reports its `items` {done, failed, skipped}."""
    now = utcnow()
    values: dict[str, Any] = {
        "heartbeat_at": now,
        "progress_done": _within_total(sa.literal(done)),
        **_step(step),
    }
    if items is not None:
        values["items"] = items
    if not apply(session, "progress", _lease(job_id, claims), values):
        return False
    if parent_id is None:
        return True
    return bool(
        apply(
            session,
            "progress",
            [Job.id == parent_id],
            {"heartbeat_at": now, "progress_done": _within_total(Job.progress_done + delta)},
        )
    )


def finish(session: Session, job_id: str, claims: int | None, artifact_id: int) -> bool:
    """running → done, pointing at its published file."""
    where = _lease(job_id, claims) if claims is not None else [Job.id == job_id]
    return bool(
        apply(
            session,
            "finish",
            where,
            {
                "artifact_id": artifact_id,
                "finished_at": utcnow(),
                "progress_done": Job.progress_total,
                **_step(Msg("ready")),
                **_error(None),
            },
        )
    )


def fail(session: Session, job_id: str, claims: int | None, error: Msg) -> bool:
    """→ failed with an error a person can act on; a batch's other chunks stop."""
    where = _lease(job_id, claims) if claims is not None else [Job.id == job_id]
    if not apply(
        session, "fail", where, {"finished_at": utcnow(), **_step(Msg("failed")), **_error(error)}
    ):
        return False
    apply(session, "cancel", [Job.parent_id == job_id], {"finished_at": utcnow()})
    return True


def retry_later(
    session: Session,
    job_id: str,
    claims: int,
    error: Msg,
    delay_s: float,
    *,
    parent_id: str | None = None,
    reported: int = 0,
) -> bool:
    """running → queued with a delay; a chunk takes back what it had added to its parent."""
    if parent_id:
        reported = _chunk_progress(session, job_id, claims)
    if not apply(
        session,
        "retry_later",
        _lease(job_id, claims),
        {
            "worker": None,
            "progress_done": 0,
            **_error(error),
            **_step(Msg("retrying_in", {"seconds": round(delay_s)})),
            "sent_at": utcnow() + timedelta(seconds=delay_s),
        },
    ):
        return False
    if parent_id and reported:
        apply(
            session,
            "progress",
            [Job.id == parent_id],
            {"progress_done": _within_total(Job.progress_done - reported)},
        )
    return True


def reap(session: Session, job: Any, error: Msg) -> bool:
    """A running job whose worker died or went silent: back to queued, sent again now.

    `job` is the reaper's snapshot (id, claims, parent_id, progress_done): the compare-and-set
    is on the claim the reaper judged, never on a newer one. A chunk takes back what it has
    added to its parent as it is now, not as the snapshot saw it."""
    added = _chunk_progress(session, job.id, job.claims) if job.parent_id else 0
    if not apply(
        session,
        "reap",
        _lease(job.id, job.claims),
        {
            "worker": None,
            "sent_at": utcnow(),
            **_step(Msg("waiting")),
            **_error(error),
            "progress_done": 0 if job.parent_id else job.progress_done,
        },
    ):
        return False
    if job.parent_id and added:
        apply(
            session,
            "progress",
            [Job.id == job.parent_id],
            {"progress_done": _within_total(Job.progress_done - added)},
        )
    return True


# -- batches ------------------------------------------------------------------------------------


def split(session: Session, job_id: str, claims: int, parts: int) -> bool:
    """The parent starts over as `parts` chunks (the chunk rows are inserted by the caller)."""
    return bool(
        apply(
            session,
            "progress",
            _lease(job_id, claims),
            {
                "chunks_total": parts,
                "chunks_done": 0,
                "progress_done": 0,
                "heartbeat_at": utcnow(),
                **_step(Msg("rendering_parts", {"parts": parts})),
            },
        )
    )


def chunk_done(
    session: Session, chunk_id: str, claims: int, parent_id: str, worker: str
) -> tuple[int, int, int] | None:
    """The chunk is done and counted on its parent (one UPDATE … RETURNING: the fan-in).

    → (chunks done, chunks total, the parent's claim) or None when either moved on. The merge
    holds its lease on that claim: a retry of the batch meanwhile is a newer one."""
    if not apply(
        session, "finish", _lease(chunk_id, claims), {"finished_at": utcnow(), "worker": worker}
    ):
        return None
    rows = apply(
        session,
        "progress",
        [Job.id == parent_id],
        {"chunks_done": Job.chunks_done + 1, "heartbeat_at": utcnow(), "worker": worker},
        returning=(Job.chunks_done, Job.chunks_total, Job.claims),
    )
    return (rows[0].chunks_done, rows[0].chunks_total, rows[0].claims) if rows else None


def fan_out(session: Session, job_id: str, claims: int, children: int, skipped: int) -> bool:
    """A bulk job has queued its `children` documents (jobs of their own, `batch_id` = it) and
    skipped `skipped` unchanged ones: it waits, running, until the last document ends. Counts
    made by documents that ended while it was still queuing them are kept."""
    return bool(
        apply(
            session,
            "progress",
            _lease(job_id, claims),
            {
                "chunks_total": children,
                "progress_done": _within_total(Job.chunks_done + skipped),
                "items": {"skipped": skipped},
                "heartbeat_at": utcnow(),
                **_step(Msg("waiting_documents", {"count": children})),
            },
        )
    )


def item_ended(session: Session, batch_id: str) -> tuple[int, int] | None:
    """One document of a running bulk job ended: counted. → (ended, total) or None."""
    rows = apply(
        session,
        "progress",
        [Job.id == batch_id],
        {
            "chunks_done": Job.chunks_done + 1,
            "progress_done": _within_total(Job.progress_done + 1),
            "heartbeat_at": utcnow(),
        },
        returning=(Job.chunks_done, Job.chunks_total),
    )
    return (rows[0].chunks_done, rows[0].chunks_total) if rows else None


def resume(session: Session, job_id: str) -> bool:
    """running → queued so a worker writes the bulk job's report (its claim adds an attempt,
    taken back here: finishing is not a retry)."""
    return bool(
        apply(
            session,
            "resume",
            [Job.id == job_id],
            {"attempts": Job.attempts - 1, "sent_at": utcnow(), **_step(Msg("writing_file"))},
        )
    )


# -- a person's actions -------------------------------------------------------------------------


def cancel(session: Session, job_id: str) -> bool:
    """A live job and its chunks → cancelled; the worker notices at its next write."""
    changed = apply(
        session,
        "cancel",
        [sa.or_(Job.id == job_id, Job.parent_id == job_id, Job.batch_id == job_id)],
        {"finished_at": utcnow(), **_step(Msg("cancelled"))},
    )
    return any(row.id == job_id for row in changed)


def abandon_chunk(session: Session, chunk_id: str, claims: int) -> bool:
    """A chunk whose batch ended (failed, cancelled): it stops as cancelled."""
    return bool(apply(session, "cancel", _lease(chunk_id, claims), {"finished_at": utcnow()}))


def retry(
    session: Session,
    job_id: str,
    *,
    input_hash: str,
    summary: dict[str, Any],
    total: int,
    artifact_id: int | None,
) -> bool:
    """failed/cancelled/expired → queued (or done at once when an identical file exists)."""
    now = utcnow()
    values: dict[str, Any] = {
        "input_hash": input_hash,
        "summary": summary,
        "attempts": 0,
        **_error(None),
        "progress_done": 0,
        "progress_total": total,
        "started_at": None,
        "finished_at": None,
        "heartbeat_at": None,
        "chunks_total": 0,
        "chunks_done": 0,
        "worker": None,
        "artifact_id": None,
        "sent_at": now,
        **_step(Msg("waiting")),
    }
    if artifact_id is not None:
        values.update(
            artifact_id=artifact_id, finished_at=now, progress_done=total, **_step(Msg("ready"))
        )
        return bool(apply(session, "retry_reuse", [Job.id == job_id], values))
    return bool(apply(session, "retry", [Job.id == job_id], values))


def expire(session: Session, artifact_id: int) -> int:
    """Retention removed the file: every done job pointing at it → expired."""
    return len(
        apply(
            session,
            "expire",
            [Job.artifact_id == artifact_id],
            {"artifact_id": None, **_step(Msg("expired"))},
        )
    )
