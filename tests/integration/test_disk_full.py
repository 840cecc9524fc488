"""A full disk under a real worker stack (DESIGN §7, issue 9): the job fails saying so, no worker
dies, leftovers go at once, the next job succeeds, progress never passes its total, and
/healthz tells a low disk.

The artifact directory is a small tmpfs mounted for this module (root is needed, as on CI: the
tests fail, never skip, without); the database stays outside it. Sizes are measured, not
guessed: a first job of 1,000 labels gives the size of one chunk's part.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import wait_for
from tests.services import ADMIN, STAFF, Stack, http_request, require_services
from webapp import jobs
from webapp.extensions import db
from webapp.messages import Msg
from webapp.models import Job, User

pytestmark = pytest.mark.integration

KIND = "potting_lot_labels"
LOTS = 200
CHUNK = 1000  # labels per chunk: 200 lots x 5 copies is one chunk's worth
DISK_KB = 12 * 1024
LOW_MB = 4  # /healthz says "low" below this (DISK_LOW_MB)
FINAL = ("done", "failed", "cancelled", "expired")


def mount_tmpfs(path: Path, size_kb: int) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs as the artifact directory: run it as root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], check=True
    )


@contextmanager
def stack_on_tmpfs(*, shared_db: bool) -> Iterator[Stack]:
    """Redis, two worker processes, gunicorn and the scheduler, ARTIFACT_DIR on a tmpfs; with
    `shared_db` the SQLite database lives on that same tmpfs (else in the data folder)."""
    require_services()
    root = Path(tempfile.mkdtemp(prefix="pr-disk-", dir="/tmp"))
    disk = root / "disk"
    mount_tmpfs(disk, DISK_KB)
    stack = Stack(
        processes=2,
        env={
            "CHUNK_LABELS": str(CHUNK),
            "DISK_LOW_MB": str(LOW_MB),
            "dramatiq_worker_timeout": "100",  # idle workers poll Redis every 0.1 s
        },
        database_url=f"sqlite:///{disk / 'pressroom.db'}" if shared_db else None,
    )
    try:
        (disk / "artifacts").mkdir()
        stack.data.mkdir(parents=True, exist_ok=True)
        (stack.data / "artifacts").symlink_to(disk / "artifacts")
        stack.prepare(LOTS)
        stack.start_redis()
        stack.start_workers()
        stack.start_web()
        stack.start_scheduler()
        yield stack
    finally:
        try:
            stack.close()  # stops every service first
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
            if not os.environ.get("PRESSROOM_KEEP_TEST_DATA"):
                shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def disk_stack() -> Iterator[Stack]:
    """The artifacts on a small disk of their own; the database elsewhere."""
    with stack_on_tmpfs(shared_db=False) as stack:
        yield stack


@pytest.fixture
def ctx(disk_stack: Stack) -> Iterator[Stack]:
    with disk_stack.context():
        yield disk_stack


def user(email: str) -> User:
    db.session.commit()
    return db.session.scalars(sa.select(User).where(User.email == email)).one()


def submit(email: str, copies: int, lot_ids: list[int] | None = None) -> Job:
    job, created = jobs.submit(
        user(email), KIND, {"lot_ids": lot_ids or list(range(1, LOTS + 1)), "copies": copies}
    )
    assert created, job.status
    return job


def free_bytes(stack: Stack) -> int:
    return shutil.disk_usage(stack.data / "artifacts").free


def healthz(stack: Stack) -> dict:
    answer = http_request("GET", stack.base_url + "/healthz")
    assert answer.status == 200, answer.body  # a low disk never takes the web out
    return answer.json()


def end_of(stack: Stack, job_id: str, timeout: float = 120) -> Job:
    """Wait until the job is final, checking at every look that no count passes its total
    (the batch's own and each chunk's)."""
    seen: list[tuple[int, int]] = []

    def final() -> Job | None:
        job = stack.job(job_id)
        rows = [job, *db.session.scalars(sa.select(Job).where(Job.parent_id == job_id))]
        for row in rows:
            assert 0 <= row.progress_done <= row.progress_total, (
                row.id,
                row.progress_done,
                row.progress_total,
            )
        seen.append((job.progress_done, job.progress_total))
        return job if job.status in FINAL else None

    job = wait_for(final, timeout, message=f"job {job_id} to end")
    assert seen, "progress was never looked at"
    return job


def leftovers(stack: Stack, job_id: str) -> list[str]:
    root = stack.data / "artifacts"
    found = [f"tmp/{p.name}" for p in stack.temp_files()]
    parts = root / "chunks" / job_id
    if parts.exists():
        found += [f"chunks/{job_id}/{p.name}" for p in parts.iterdir()]
    return found


def served_by(stack: Stack, job: Job) -> int:
    host, _, pid = (job.worker or "").rpartition(":")
    assert pid.isdigit(), job.worker
    return int(pid)


@pytest.fixture(scope="module")
def part_size(disk_stack: Stack) -> int:
    """The bytes of one chunk of 1,000 labels, from a job of exactly that size (not split)."""
    with disk_stack.context():
        assert healthz(disk_stack)["status"] == "ok"
        job = submit(STAFF[0], copies=5)
        done = disk_stack.wait_status(job.id, "done", timeout=120)
        assert done.chunks_total == 0 and done.progress_total == CHUNK
        size = done.artifact.size
    assert size > 0
    return size


class TestDiskFull:
    def test_a_batch_whose_merge_would_not_fit_fails_at_once_saying_so(
        self, ctx: Stack, part_size: int
    ):
        stack = ctx
        pids = stack.worker_children()
        assert len(pids) == 2
        # Given a batch whose parts fit on the disk, but not the parts and the merged file
        free = free_bytes(stack)
        chunks = int(0.75 * free / part_size)
        assert 3 <= chunks <= 20, (free, part_size)
        job = submit(STAFF[0], copies=5 * chunks)
        assert job.progress_total == CHUNK * chunks

        # When it runs: its chunks render, and the merge is refused before it writes a byte
        ended = end_of(stack, job.id)

        # Then it failed at once (no retry fills the disk again) with a message that says how
        # much is free and how much was needed
        assert ended.status == "failed", ended.error
        assert ended.error_code == "disk_full_sized", ended.error
        assert ended.attempts == 1
        text = Msg(ended.error_code, ended.error_params).english()
        assert re.fullmatch(
            r"The disk is full: [\d.,]+ MB free, about [\d.,]+ MB needed\. "
            r"Free space or ask an administrator\.",
            text,
        ), text
        needed = ended.error_params["needed"] * 1_000_000
        assert 0.8 * chunks * part_size <= needed <= 1.2 * chunks * part_size
        assert ended.error_params["free"] * 1_000_000 < needed
        api = stack.api("GET", f"/api/v1/jobs/{job.id}").json()
        assert api["error"]["code"] == "disk_full_sized" and api["file"] is None
        assert api["progress"]["done"] <= api["progress"]["total"]
        assert "qpdf" not in stack.worker.output() and "Aborted" not in stack.worker.output()

        # … its parts are gone at once, not at the hourly retention
        wait_for(lambda: leftovers(stack, job.id) == [], 15, message="the batch's leftovers")
        # … no worker process died: the same two serve the next job
        assert stack.worker.running and stack.worker_children() == pids
        other = submit(ADMIN[0], copies=1, lot_ids=[1, 2])
        small = stack.wait_status(other.id, "done", timeout=60)
        assert served_by(stack, small) in pids
        assert stack.api("GET", f"/api/v1/jobs/{job.id}/file").status == 409

    def test_a_batch_that_fills_the_disk_while_rendering_fails_and_the_next_job_works(
        self, ctx: Stack, part_size: int
    ):
        stack = ctx
        pids = stack.worker_children()
        # Given a disk with room for about one and a half parts only
        filler = stack.data / "artifacts" / "filler"
        room = int(1.5 * part_size)
        with filler.open("wb") as fh:
            os.posix_fallocate(fh.fileno(), 0, free_bytes(stack) - room)
        try:
            # /healthz says the disk is low (and still answers 200)
            health = healthz(stack)
            assert health["status"] == "low", health
            assert health["disk"]["low"] is True
            assert health["disk"]["free_bytes"] < LOW_MB * 1_000_000
            assert health["disk"]["free_bytes"] == pytest.approx(free_bytes(stack), rel=0.2)

            # When a batch of five parts runs
            job = submit(STAFF[0], copies=25)
            ended = end_of(stack, job.id)

            # Then it failed at once, saying the disk is full
            assert ended.status == "failed" and ended.attempts == 1, ended.error
            assert ended.error_code in ("disk_full_sized", "disk_full_free"), ended.error
            assert (
                Msg(ended.error_code, ended.error_params).english().startswith("The disk is full: ")
            )
            # … and nothing of it stays on the disk: its parts, its temp files, its cancelled
            # chunks' half-written files
            wait_for(lambda: leftovers(stack, job.id) == [], 15, message="the batch's leftovers")
            chunks = db.session.scalars(sa.select(Job).where(Job.parent_id == job.id)).all()
            assert all(c.status in ("failed", "cancelled", "done") for c in chunks)
            assert free_bytes(stack) >= room * 0.9
        finally:
            filler.unlink()

        # When space is freed, /healthz is ok again and another user's job works, on the
        # same worker processes
        assert healthz(stack)["status"] == "ok"
        assert stack.worker.running and stack.worker_children() == pids
        other = submit(ADMIN[0], copies=2, lot_ids=[3, 4])
        small = stack.wait_status(other.id, "done", timeout=60)
        assert served_by(stack, small) in pids
        assert (stack.data / "artifacts" / small.artifact.path).is_file()


@pytest.fixture(scope="module")
def shared_stack() -> Iterator[Stack]:
    """The database on the artifacts' small disk: a full disk refuses its writes too."""
    with stack_on_tmpfs(shared_db=True) as stack, stack.context():
        yield stack


class TestDiskFullWithTheDatabaseOnIt:
    def test_the_batch_still_ends_failed_and_the_service_recovers_alone(self, shared_stack: Stack):
        stack = shared_stack
        assert str(stack.data) not in stack.env["DATABASE_URL"]  # on the tmpfs, not beside
        pids = stack.worker_children()
        first = stack.wait_status(submit(STAFF[0], copies=5).id, "done", timeout=120)
        part = first.artifact.size
        # Given a disk (database included) with room for about one and a half parts
        filler = stack.data / "artifacts" / "filler"
        with filler.open("wb") as fh:
            os.posix_fallocate(fh.fileno(), 0, free_bytes(stack) - int(1.5 * part))
        try:
            # When a batch of five parts fills it
            job = submit(STAFF[0], copies=25)
            ended = end_of(stack, job.id)
            # Then the batch does not stay running: it failed at once, saying the disk is full
            assert ended.status == "failed" and ended.attempts == 1, ended.error
            assert ended.error_code in ("disk_full_sized", "disk_full_free"), ended.error
            wait_for(lambda: leftovers(stack, job.id) == [], 15, message="the batch's leftovers")
        finally:
            filler.unlink()
        # … no process died, and once space is freed the next job of another user works
        assert stack.worker.running and stack.worker_children() == pids
        assert stack.scheduler.running and stack.web.running
        assert healthz(stack)["status"] == "ok"
        other = stack.wait_status(submit(ADMIN[0], copies=1, lot_ids=[5]).id, "done", timeout=60)
        assert served_by(stack, other) in pids
