"""The periodic side of the engine: recover jobs of dead workers, re-send, re-drive the outbox,
expire old files."""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import current_app

from webapp import storage
from webapp.db import serialize_on, write_txn
from webapp.extensions import db
from webapp.jobs import artifacts, batches, outbox, transitions
from webapp.jobs.submit import send
from webapp.messages import Msg
from webapp.models import JOB_IS_LIVE, LIVE_STATUSES, Artifact, Job, JobStatus, utcnow

log = logging.getLogger(__name__)


def _local_worker_dead(worker: str | None) -> bool:
    """True when `worker` ("host:pid") ran on this host and that process is gone."""
    if not worker or ":" not in worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _has_live_chunks(parent_id: str) -> bool:
    """False for a split job whose chunks are gone (it is re-queued and split again), or a
    bulk job whose documents all ended (re-queued: its report is written)."""
    return bool(
        db.session.scalar(
            sa.select(sa.func.count(Job.id)).where(
                sa.or_(Job.parent_id == parent_id, Job.batch_id == parent_id),
                JOB_IS_LIVE,
            )
        )
    )


def reap() -> dict[str, int]:
    """Re-queue running jobs whose worker died or went silent; re-send queued jobs not sent
    lately; re-drive outbox items that are due."""
    config = current_app.config
    now = utcnow()
    stale_before = now - timedelta(seconds=config["HEARTBEAT_STALE_S"])
    # A snapshot of plain values: each decision below is a compare-and-set on the claim seen
    # here, so a job re-claimed meanwhile (by a worker, after another scheduler's reap) is
    # never taken from its new worker.
    running = db.session.execute(
        sa.select(
            Job.id,
            Job.claims,
            Job.attempts,
            Job.max_attempts,
            Job.parent_id,
            Job.batch_id,
            Job.progress_done,
            Job.worker,
            Job.heartbeat_at,
            Job.chunks_total,
            Job.chunks_done,
        ).where(Job.status == JobStatus.RUNNING)
    ).all()
    db.session.commit()
    requeued: list[tuple[str, bool]] = []
    failed = 0
    for job in running:
        if job.chunks_total and _has_live_chunks(job.id):
            continue  # its chunks carry the liveness; they are reaped one by one
        dead = _local_worker_dead(job.worker)
        if not dead and job.heartbeat_at and job.heartbeat_at >= stale_before:
            continue
        why = Msg("worker_stopped" if dead else "worker_silent")
        if dead and job.worker:  # what the dead process was writing is nobody's any more
            artifacts.remove_temp_of(job.worker)
        with write_txn() as session:
            if job.attempts >= job.max_attempts:
                gave_up = Msg(why.code, {"attempts": job.attempts})
                if transitions.fail(session, job.id, job.claims, gave_up):
                    failed += 1
                    if job.parent_id:
                        transitions.fail(session, job.parent_id, None, gave_up)
                    if job.parent_id or job.chunks_total:  # the batch ended: its parts go now
                        batch = job.parent_id or job.id
                        artifacts.store().delete_prefix(batches.part_prefix(batch))
                continue
            if transitions.reap(session, job, why):
                requeued.append((job.id, job.parent_id is not None or job.batch_id is not None))
    for job_id, chunk in requeued:
        send(job_id, chunk=chunk)
        log.warning("job %s re-queued by the reaper", job_id)

    resend_before = now - timedelta(seconds=config["RESEND_AFTER_S"])
    with write_txn() as session:
        unsent = transitions.unsent(session, resend_before)
        transitions.mark_sent(session, [row.id for row in unsent], now)
    resent = sum(
        send(row.id, chunk=row.parent_id is not None or row.batch_id is not None) for row in unsent
    )
    if unsent:
        log.info("reaper re-sent %d queued jobs (%d reached the broker)", len(unsent), resent)
    redriven = outbox.redrive()
    return {"requeued": len(requeued), "failed": failed, "resent": resent, "outbox": redriven}


def expire() -> dict[str, int]:
    """Delete files past their retention (never a record's own document: `pinned`); their done
    jobs become `expired`."""
    now = utcnow()
    old = db.session.execute(
        sa.select(Artifact.id, Artifact.path).where(Artifact.expires_at < now, ~Artifact.pinned)
    ).all()
    db.session.commit()
    files = jobs = 0
    for artifact_id, path in old:
        # Under the write lock: still expired (a submit may have reused it since), and its file
        # is removed only when no other artifact row names the same file (identical bytes from
        # two inputs share one content address). A worker publishes under the same lock (on
        # PostgreSQL: the file's path lock, then the row's, in that order, as lease.finish).
        with write_txn() as session:
            serialize_on(session, artifacts.path_lock(path))
            still = session.scalar(
                sa.select(Artifact.id)
                .where(Artifact.id == artifact_id, Artifact.expires_at < now, ~Artifact.pinned)
                .with_for_update()
            )
            if still is None:
                continue
            jobs += transitions.expire(session, artifact_id)
            session.execute(sa.delete(Artifact).where(Artifact.id == artifact_id))
            shared = session.scalar(
                sa.select(sa.func.count(Artifact.id)).where(Artifact.path == path)
            )
            if not shared:
                artifacts.delete(path)
            files += 1
    # Temp files of workers that died mid-write (older than any running job could be).
    tmp = artifacts.root() / "tmp"
    cutoff = time.time() - max(current_app.config["JOB_TIME_LIMIT_S"] * 2, 3600)
    removed = 0
    for part in tmp.glob("*.part") if tmp.exists() else []:
        if _mtime(part) < cutoff:
            artifacts.remove(part)
            removed += 1
    # Parts of batches that ended without a merge (cancelled, failed): nothing reads them any
    # more and nothing else removes them. Checked and removed under the write lock, which a
    # chunk also holds to publish, so no part can land in a folder being removed.
    store = artifacts.store()
    folders = 0
    for name in store.folders("chunks/"):
        with write_txn() as session:
            status = session.scalar(sa.select(Job.status).where(Job.id == name))
            if status not in LIVE_STATUSES:
                store.delete_prefix(batches.part_prefix(name))
                folders += 1
    orphans = 0 if isinstance(store, storage.LocalStorage) else _remove_orphans(store, cutoff)
    if files or removed or folders or orphans:
        log.info(
            "retention: %d files expired (%d jobs), %d stale temp files, %d folders of "
            "unmerged parts and %d unrecorded objects removed",
            files,
            jobs,
            removed,
            folders,
            orphans,
        )
    return {
        "files": files,
        "jobs": jobs,
        "temp_files": removed,
        "chunk_folders": folders,
        "orphans": orphans,
    }


def _remove_orphans(store: storage.Storage, cutoff: float) -> int:
    """Objects of a remote store that no artifact row names, older than any running job: an
    upload whose transaction never committed (upload then record: a lost lease, a crash).
    Checked and removed under the write lock, under which a worker records its upload."""
    candidates = [
        item.key
        for item in store.iter()
        if item.modified < cutoff and not item.key.startswith(("chunks/", "tmp/"))
    ]
    removed = 0
    for start in range(0, len(candidates), 500):
        batch = candidates[start : start + 500]
        with write_txn() as session:
            named = set(session.scalars(sa.select(Artifact.path).where(Artifact.path.in_(batch))))
            for key in batch:
                if key not in named:
                    store.delete(key)
                    removed += 1
    return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
