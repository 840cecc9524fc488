"""The periodic side of the engine: recover jobs of dead workers, re-send, expire old files."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import current_app

from webapp.extensions import db
from webapp.jobs import artifacts
from webapp.jobs.db import write_txn
from webapp.jobs.engine import send
from webapp.jobs.lease import fail_parent
from webapp.models import LIVE_STATUSES, Artifact, Job, JobStatus, utcnow

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


def reap() -> dict[str, int]:
    """Re-queue running jobs whose worker died or went silent; re-send queued jobs not sent lately."""
    config = current_app.config
    now = utcnow()
    stale_before = now - timedelta(seconds=config["HEARTBEAT_STALE_S"])
    running = db.session.scalars(sa.select(Job).where(Job.status == JobStatus.RUNNING)).all()
    requeued: list[tuple[str, bool]] = []
    failed = 0
    for job in running:
        if job.chunks_total and job.chunks_done < job.chunks_total:
            continue  # its chunks carry the liveness; they are reaped one by one
        dead = _local_worker_dead(job.worker)
        if not dead and job.heartbeat_at and job.heartbeat_at >= stale_before:
            continue
        why = "its worker stopped" if dead else "its worker stopped answering"
        with write_txn() as session:
            cas = sa.update(Job).where(Job.id == job.id, Job.status == JobStatus.RUNNING,
                                       Job.attempts == job.attempts)
            if job.attempts >= job.max_attempts:
                message = f"Gave up after {job.attempts} attempts: {why}."
                if session.execute(cas.values(status=JobStatus.FAILED, error=message,
                                              finished_at=now, progress_step="Failed")).rowcount:
                    failed += 1
                    if job.parent_id:
                        fail_parent(session, job.parent_id, message)
                continue
            if session.execute(cas.values(status=JobStatus.QUEUED, worker=None, sent_at=now,
                                          progress_done=0 if job.parent_id else job.progress_done,
                                          progress_step="Waiting for a worker",
                                          error=f"Attempt {job.attempts}: {why}; retrying."
                                          )).rowcount:
                if job.parent_id:
                    session.execute(sa.update(Job).where(Job.id == job.parent_id).values(
                        progress_done=Job.progress_done - job.progress_done))
                requeued.append((job.id, job.parent_id is not None))
    for job_id, chunk in requeued:
        send(job_id, chunk=chunk)
        log.warning("job %s re-queued by the reaper", job_id)

    resend_before = now - timedelta(seconds=config["RESEND_AFTER_S"])
    with write_txn() as session:
        unsent = session.execute(sa.select(Job.id, Job.parent_id).where(
            Job.status == JobStatus.QUEUED,
            sa.or_(Job.sent_at.is_(None), Job.sent_at < resend_before))).all()
        if unsent:
            session.execute(sa.update(Job).where(Job.id.in_([row.id for row in unsent]))
                            .values(sent_at=now))
    resent = sum(send(row.id, chunk=row.parent_id is not None) for row in unsent)
    if unsent:
        log.info("reaper re-sent %d queued jobs (%d reached the broker)", len(unsent), resent)
    return {"requeued": len(requeued), "failed": failed, "resent": resent}


def expire() -> dict[str, int]:
    """Delete files past their retention; their done jobs become `expired`."""
    now = utcnow()
    old = db.session.scalars(sa.select(Artifact).where(Artifact.expires_at < now)).all()
    jobs = 0
    for artifact in old:
        with write_txn() as session:
            jobs += session.execute(sa.update(Job).where(Job.artifact_id == artifact.id).values(
                status=JobStatus.EXPIRED, artifact_id=None, progress_step="Expired")).rowcount
            session.execute(sa.delete(Artifact).where(Artifact.id == artifact.id))
        artifacts.remove(artifacts.root() / artifact.path)
    # Temp files of workers that died mid-write (older than any running job could be).
    tmp = artifacts.root() / "tmp"
    cutoff = time.time() - max(current_app.config["JOB_TIME_LIMIT_S"] * 2, 3600)
    removed = 0
    for path in tmp.glob("*.part") if tmp.exists() else []:
        if _mtime(path) < cutoff:
            artifacts.remove(path)
            removed += 1
    # Parts of batches that ended without a merge (cancelled, failed): nothing reads them any
    # more and nothing else removes them. Checked and removed under the write lock, which a
    # chunk also holds to publish, so no part can land in a folder being removed.
    parts = artifacts.root() / "chunks"
    folders = 0
    for folder in sorted(parts.iterdir()) if parts.is_dir() else []:
        with write_txn() as session:
            status = session.scalar(sa.select(Job.status).where(Job.id == folder.name))
            if status not in LIVE_STATUSES:
                shutil.rmtree(folder, ignore_errors=True)
                folders += 1
    if old or removed or folders:
        log.info("retention: %d files expired (%d jobs), %d stale temp files and %d folders of "
                 "unmerged parts removed", len(old), jobs, removed, folders)
    return {"files": len(old), "jobs": jobs, "temp_files": removed, "chunk_folders": folders}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
