"""A worker's lease on a job: every write it makes is a compare-and-set on (id, running, claims)
(`claims` counts every claim and is never reset; `attempts` starts over when a person retries).

When a compare-and-set changes no row the job was cancelled, re-queued or failed behind the
worker's back: `LeaseLost` is raised, the worker stops and deletes its temp files, so a slow
worker can never publish. The lease is also the `RenderContext` a kind renders with.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app

from webapp.db import serialize_on, write_txn
from webapp.errors import DatabaseBusy, LeaseLost, PermanentError
from webapp.jobs import artifacts, transitions
from webapp.jobs.submit import keep_artifact, kind_of, send
from webapp.messages import Msg
from webapp.models import Artifact, Job, JobStatus, utcnow

log = logging.getLogger(__name__)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Lease:
    job_id: str
    claims: int  # the claim this lease is (every write is a compare-and-set on it)
    attempts: int
    max_attempts: int
    parent_id: str | None
    worker: str
    suffix: str
    deadline: float
    min_interval: float
    reported: int = 0
    last_write: float = field(default_factory=time.monotonic)
    temp_files: list[Path] = field(default_factory=list)
    bulk: bool = False  # a chunk or a bulk job's document: sent again to the bulk queue

    @classmethod
    def start(
        cls,
        job_id: str,
        claims: int,
        attempts: int,
        max_attempts: int,
        parent_id: str | None,
        suffix: str,
        *,
        min_interval: float | None = None,
    ) -> Lease:
        config = current_app.config
        return cls(
            job_id=job_id,
            claims=claims,
            attempts=attempts,
            max_attempts=max_attempts,
            parent_id=parent_id,
            worker=worker_id(),
            suffix=suffix,
            deadline=time.monotonic() + config["JOB_TIME_LIMIT_S"],
            min_interval=config["PROGRESS_MIN_INTERVAL_S"]
            if min_interval is None
            else min_interval,
        )

    # -- while rendering (RenderContext) -----------------------------------------------------

    def temp_path(self) -> Path:
        path = artifacts.temp_path(self.suffix)
        self.temp_files.append(path)
        return path

    def progress(
        self,
        done: int,
        step: str | None = None,
        *,
        force: bool = False,
        items: dict[str, int] | None = None,
        **params: Any,
    ) -> None:
        """Report progress (throttled); also the heartbeat, the cancel check and the deadline.
        `items` {done, failed, skipped}: a job over many records says how each went."""
        now = time.monotonic()
        if now > self.deadline:
            raise PermanentError("time_limit", minutes=current_app.config["JOB_TIME_LIMIT_S"] // 60)
        if not force and now - self.last_write < self.min_interval:
            return
        self.last_write = now
        try:
            with write_txn() as session:
                alive = transitions.progress(
                    session,
                    self.job_id,
                    self.claims,
                    done,
                    Msg(step, params) if step else None,
                    parent_id=self.parent_id,
                    delta=done - self.reported,
                    items=items,
                )
        except DatabaseBusy as exc:
            if force or exc.reason != "locked":  # a full or read-only database: not news
                raise
            # A throttled report is only news: the work goes on and the next report carries
            # the count (the reaper's stale check allows for far longer than a busy lock).
            log.warning("job %s: progress not written (%s); rendering on", self.job_id, exc)
            return
        if not alive:
            raise LeaseLost(self.job_id)
        self.reported = done

    # -- endings -----------------------------------------------------------------------------

    def finish(self, tmp: Path, media_type: str) -> None:
        """Publish `tmp` as the job's file and mark the job done, if the lease still holds."""
        sha = artifacts.sha256_of(tmp)
        size = tmp.stat().st_size
        relative = artifacts.content_path(sha, self.suffix)
        # Upload then record: a remote store gets the bytes before the transaction (the row is
        # written only once they are there); inside it publish() checks they still are.
        artifacts.stage(tmp, relative)
        with write_txn() as session:
            job = session.get(Job, self.job_id, with_for_update=True)  # (PostgreSQL: vs a cancel)
            if job is None or job.status != JobStatus.RUNNING or job.claims != self.claims:
                raise LeaseLost(self.job_id)
            # Retention removes a file under the same two locks, path first (PostgreSQL; on
            # SQLite the write lock is both): no file is removed under a row that names it.
            serialize_on(session, artifacts.path_lock(relative))
            artifact = session.scalars(
                sa.select(Artifact).where(Artifact.input_hash == job.input_hash).with_for_update()
            ).first()
            if artifact is None:
                artifact = Artifact(
                    input_hash=job.input_hash,
                    sha256=sha,
                    path=relative,
                    size=size,
                    media_type=media_type,
                )
                session.add(artifact)
            # Different bytes for the same input: a regeneration after a template change (the
            # input is the data, not the code). The newest rendering is the document from now.
            if artifact.sha256 != sha or not artifacts.exists(artifact.path):
                artifacts.publish(tmp, relative)
                artifact.sha256, artifact.path, artifact.size = sha, relative, size
                artifact.created_at = utcnow()
            keep_artifact(artifact)
            session.flush()
            if not transitions.finish(session, self.job_id, self.claims, artifact.id):
                raise LeaseLost(self.job_id)
        log.info(
            "job %s done: %s (%d bytes, attempt %d)", self.job_id, relative, size, self.attempts
        )

    def fail(self, error: Msg) -> None:
        """Fail the job (and, for a chunk, its whole batch) with a message a person can act on."""
        with write_txn() as session:
            if transitions.fail(session, self.job_id, self.claims, error) and self.parent_id:
                transitions.fail(session, self.parent_id, None, error)
        log.warning("job %s failed (attempt %d): %s", self.job_id, self.attempts, error.english())

    def retry_later(self, error: Msg) -> None:
        """A transient error: back to queued with exponential backoff, or failed when out of tries."""
        if self.attempts >= self.max_attempts:
            self.fail(Msg(error.code, {**error.params, "attempts": self.attempts}))
            return
        delay = current_app.config["RETRY_BACKOFF_S"] * 2 ** (self.attempts - 1)
        with write_txn() as session:
            changed = transitions.retry_later(
                session,
                self.job_id,
                self.claims,
                error,
                delay,
                parent_id=self.parent_id,
                reported=self.reported,
            )
        if changed:
            log.warning(
                "job %s: attempt %d failed (%s); retrying in %.1f s",
                self.job_id,
                self.attempts,
                error.english(),
                delay,
            )
            send(self.job_id, delay_s=delay, chunk=self.bulk or self.parent_id is not None)

    def abandon(self) -> None:
        """The lease is lost: delete temp files; a chunk whose batch ended is cancelled too."""
        self.cleanup()
        if self.parent_id:
            with write_txn() as session:
                parent = session.scalar(sa.select(Job.status).where(Job.id == self.parent_id))
                if parent != JobStatus.RUNNING:
                    transitions.abandon_chunk(session, self.job_id, self.claims)
        log.info(
            "job %s: lease lost at attempt %d; stopped without publishing",
            self.job_id,
            self.attempts,
        )

    def cleanup(self) -> None:
        for path in self.temp_files:
            artifacts.remove(path)
        self.temp_files.clear()


def claim(job_id: str) -> Lease | None:
    """queued → running with attempts + 1; None when the job is not claimable (ack and drop)."""
    worker = worker_id()
    with write_txn() as session:
        row = transitions.claim(session, job_id, worker)
    if row is None:
        return None
    lease = Lease.start(
        job_id, row.claims, row.attempts, row.max_attempts, row.parent_id, kind_of(row.kind).suffix
    )
    lease.bulk = row.batch_id is not None
    return lease
