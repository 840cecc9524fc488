"""Claim and lease: every write a worker makes is a compare-and-set on (id, running, attempts).

When a compare-and-set changes no row the job was cancelled, re-queued or failed behind the
worker's back: `LeaseLost` is raised, the worker stops and deletes its temp files, so a slow
worker can never publish.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import current_app

from webapp.jobs import artifacts
from webapp.jobs.db import write_txn
from webapp.jobs.engine import attach_artifact, kind_of, send
from webapp.jobs.errors import LeaseLost, PermanentError
from webapp.models import Artifact, Job, JobStatus, utcnow

log = logging.getLogger(__name__)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _cas(job_id: str, attempts: int):  # type: ignore[no-untyped-def]
    return sa.update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING,
                                Job.attempts == attempts)


@dataclass
class Lease:
    job_id: str
    attempts: int
    max_attempts: int
    parent_id: str | None
    worker: str
    deadline: float
    min_interval: float
    heartbeat_s: float
    reported: int = 0
    last_write: float = field(default_factory=time.monotonic)
    temp_files: list[Path] = field(default_factory=list)

    # -- while rendering -------------------------------------------------------------------

    def temp_path(self, suffix: str = ".pdf") -> Path:
        path = artifacts.temp_path(suffix)
        self.temp_files.append(path)
        return path

    def progress(self, done: int, step: str | None = None, *, force: bool = False) -> None:
        """Report progress (throttled); also the heartbeat, the cancel check and the deadline."""
        now = time.monotonic()
        if now > self.deadline:
            limit = current_app.config["JOB_TIME_LIMIT_S"] // 60
            raise PermanentError(f"Stopped after the time limit of {limit} minutes. "
                                 "Split the batch into smaller ones and try again.")
        if not force and now - self.last_write < self.min_interval:
            return
        self.last_write = now
        values: dict[str, object] = {"heartbeat_at": utcnow(), "progress_done": done}
        if step:
            values["progress_step"] = step
        with write_txn() as session:
            alive = session.execute(_cas(self.job_id, self.attempts).values(**values)).rowcount
            if alive and self.parent_id:
                alive = session.execute(sa.update(Job).where(
                    Job.id == self.parent_id, Job.status == JobStatus.RUNNING
                ).values(progress_done=Job.progress_done + (done - self.reported),
                         heartbeat_at=values["heartbeat_at"])).rowcount
        if not alive:
            raise LeaseLost(self.job_id)
        self.reported = done

    # -- endings ---------------------------------------------------------------------------

    def finish(self, tmp: Path) -> None:
        """Publish `tmp` as the job's file and mark the job done, if the lease still holds."""
        sha = artifacts.sha256_of(tmp)
        size = tmp.stat().st_size
        with write_txn() as session:
            job = session.scalars(sa.select(Job).where(
                Job.id == self.job_id, Job.status == JobStatus.RUNNING,
                Job.attempts == self.attempts).with_for_update()).first()
            if job is None:
                raise LeaseLost(self.job_id)
            kind = kind_of(job.kind)
            artifact = session.scalars(sa.select(Artifact).where(
                Artifact.input_hash == job.input_hash)).first()
            relative = artifacts.content_path(sha, kind.suffix)
            if artifact is None:
                artifact = Artifact(input_hash=job.input_hash, sha256=sha, path=relative,
                                    size=size, media_type=kind.media_type)
                session.add(artifact)
            if artifact.sha256 == sha or not (artifacts.root() / artifact.path).exists():
                artifacts.publish(tmp, relative)
                artifact.sha256, artifact.path, artifact.size = sha, relative, size
            attach_artifact(job, artifact)
        log.info("job %s done: %s (%d bytes, attempt %d)", self.job_id, relative, size,
                 self.attempts)

    def fail(self, message: str) -> None:
        """Fail the job (and, for a chunk, its parent) with a message a person can act on."""
        now = utcnow()
        with write_txn() as session:
            changed = session.execute(_cas(self.job_id, self.attempts).values(
                status=JobStatus.FAILED, error=message, finished_at=now,
                progress_step="Failed")).rowcount
            if changed and self.parent_id:
                fail_parent(session, self.parent_id, message)
        log.warning("job %s failed (attempt %d): %s", self.job_id, self.attempts, message)

    def retry_later(self, message: str) -> None:
        """A transient error: back to queued with exponential backoff, or failed when out of tries."""
        if self.attempts >= self.max_attempts:
            self.fail(f"{message} (gave up after {self.attempts} attempts)")
            return
        delay = current_app.config["RETRY_BACKOFF_S"] * 2 ** (self.attempts - 1)
        with write_txn() as session:
            changed = session.execute(_cas(self.job_id, self.attempts).values(
                status=JobStatus.QUEUED, worker=None, progress_done=0,
                error=f"Attempt {self.attempts} failed: {message}",
                progress_step=f"Retrying in {delay:.0f} s",
                sent_at=utcnow() + timedelta(seconds=delay))).rowcount
            if changed and self.parent_id:
                session.execute(sa.update(Job).where(Job.id == self.parent_id).values(
                    progress_done=Job.progress_done - self.reported))
        if changed:
            log.warning("job %s: attempt %d failed (%s); retrying in %.1f s", self.job_id,
                        self.attempts, message, delay)
            send(self.job_id, delay_s=delay, chunk=self.parent_id is not None)

    def abandon(self) -> None:
        """The lease is lost: delete temp files; a chunk whose parent ended is cancelled too."""
        self.cleanup()
        if self.parent_id:
            with write_txn() as session:
                parent_status = session.scalar(sa.select(Job.status).where(Job.id == self.parent_id))
                if parent_status != JobStatus.RUNNING:
                    session.execute(_cas(self.job_id, self.attempts).values(
                        status=JobStatus.CANCELLED, finished_at=utcnow()))
        log.info("job %s: lease lost at attempt %d; stopped without publishing", self.job_id,
                 self.attempts)

    def cleanup(self) -> None:
        for path in self.temp_files:
            artifacts.remove(path)
        self.temp_files.clear()


def fail_parent(session, parent_id: str, message: str) -> None:  # type: ignore[no-untyped-def]
    """A chunk failed for good: the whole batch fails and its other chunks stop."""
    now = utcnow()
    session.execute(sa.update(Job).where(Job.id == parent_id, Job.status == JobStatus.RUNNING)
                    .values(status=JobStatus.FAILED, error=message, finished_at=now,
                            progress_step="Failed"))
    session.execute(sa.update(Job).where(Job.parent_id == parent_id,
                                         Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)))
                    .values(status=JobStatus.CANCELLED, finished_at=now))


def claim(job_id: str) -> Lease | None:
    """queued → running with attempts + 1; None when the job is not claimable (ack and drop)."""
    config = current_app.config
    now = utcnow()
    worker = worker_id()
    with write_txn() as session:
        row = session.execute(sa.update(Job).where(
            Job.id == job_id, Job.status == JobStatus.QUEUED
        ).values(status=JobStatus.RUNNING, attempts=Job.attempts + 1, worker=worker,
                 heartbeat_at=now, started_at=sa.func.coalesce(Job.started_at, now),
                 progress_step="Starting").returning(
            Job.attempts, Job.max_attempts, Job.parent_id)).first()
        if row is None:
            return None
        attempts, max_attempts, parent_id = row
        if parent_id:  # the parent shows the highest attempt of its chunks
            session.execute(sa.update(Job).where(Job.id == parent_id, Job.attempts < attempts)
                            .values(attempts=attempts))
    return Lease(job_id=job_id, attempts=attempts, max_attempts=max_attempts,
                 parent_id=parent_id, worker=worker,
                 deadline=time.monotonic() + config["JOB_TIME_LIMIT_S"],
                 min_interval=config["PROGRESS_MIN_INTERVAL_S"], heartbeat_s=config["HEARTBEAT_S"])
