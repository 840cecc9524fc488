"""Big batches (DESIGN §3): split into chunks, rendered by two real worker processes, merged."""

from __future__ import annotations

from pathlib import Path

import pypdfium2
import pytest
import sqlalchemy as sa

from tests.conftest import wait_for
from tests.services import Stack
from webapp import jobs
from webapp.extensions import db
from webapp.jobs.db import write_txn
from webapp.models import Job, PottingLot

pytestmark = pytest.mark.integration

KIND = "potting_lot_labels"
LOTS = 200
CHUNK = 2500
# Progress is written every 0.05 s (0.25 s by default), so a chunk that takes well under a
# second on a fast machine is still seen half way. An idle worker process polls Redis every
# 0.1 s (1 s by default), so it surely takes the second chunk while the first is drawn.
STACK = {"processes": 2, "lots": LOTS, "web": False,
         "env": {"CHUNK_LABELS": str(CHUNK), "PROGRESS_MIN_INTERVAL_S": "0.05",
                 "dramatiq_worker_timeout": "100"}}


def chunks_of(job_id: str) -> list[Job]:
    db.session.commit()  # a fresh snapshot: the workers commit all the time
    return list(db.session.scalars(sa.select(Job).where(Job.parent_id == job_id)))


def page_texts(path: Path, pages: tuple[int, ...]) -> tuple[int, list[str]]:
    pdf = pypdfium2.PdfDocument(str(path))
    try:
        texts = []
        for i in pages:
            page = pdf[i]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_range())
            textpage.close()
            page.close()
        return len(pdf), texts
    finally:
        pdf.close()


class TestChunkedBatches:
    """A batch over CHUNK_LABELS is rendered in parts in parallel and published as one file."""

    def test_a_big_batch_is_rendered_by_both_processes_and_merged_in_order(self, stack: Stack,
                                                                           app_ctx):
        # Given 4,000 labels (200 lots × 20 copies): two chunks, 2,500 + 1,500
        job, created = jobs.submit(stack.staff(), KIND, {"filter": {}, "copies": 20})
        assert created and job.progress_total == 20 * LOTS
        numbers = dict(db.session.execute(sa.select(PottingLot.id, PottingLot.lot_number)).all())
        expected = [numbers[lot_id] for lot_id in job.params["lot_ids"] for _copy in range(20)]

        # When the workers run it, watch the chunks (they are deleted after the merge)
        workers: set[str] = set()
        progress: list[int] = []

        def finished() -> bool:
            parent = stack.job(job.id)
            assert parent.status in ("queued", "running", "done"), (parent.status, parent.error)
            workers.update(c.worker for c in chunks_of(job.id) if c.worker)
            progress.append(parent.progress_done)
            return parent.status == "done"

        wait_for(finished, 120, interval=0.02, message="the big batch to finish")

        # Then both worker processes rendered chunks, and the parent's progress only grew
        assert len(workers) == 2, workers
        assert progress == sorted(progress) and progress[-1] == 20 * LOTS
        row = stack.job(job.id)
        assert row.attempts == 1 and row.chunks_total == -(-20 * LOTS // CHUNK)
        # The merging worker removes the chunk rows and files right after publishing the file
        parts = stack.data / "artifacts" / "chunks" / job.id
        wait_for(lambda: not chunks_of(job.id) and not parts.exists(), 10,
                 message="the chunk rows and files to be removed")
        # … and the merged file has every label in order, across the seam between the chunks
        path = stack.data / "artifacts" / row.artifact.path
        probes = (0, 19, 20, CHUNK - 1, CHUNK, 20 * LOTS - 1)
        pages, texts = page_texts(path, probes)
        assert pages == 20 * LOTS
        for index, text in zip(probes, texts, strict=True):
            assert expected[index] in text, (index, expected[index], text)
        assert expected[CHUNK - 1] != expected[CHUNK] and expected[19] != expected[20]

    def test_a_chunk_whose_worker_was_killed_is_recovered_and_the_batch_completes(
            self, stack: Stack, app_ctx):
        before = stack.artifact_files()
        job, _ = jobs.submit(stack.staff(), KIND, {"filter": {}, "copies": 25})

        # Given a chunk (of two) that a worker is half way through: drawing or writing its file
        # (copies of a label draw in ~40 µs each, so most of a chunk's time is the writing)
        def drawing_chunk() -> Job | None:
            parent = stack.job(job.id)
            assert parent.status in ("queued", "running"), (parent.status, parent.error)
            return next((c for c in chunks_of(job.id) if c.status == "running"
                         and c.progress_done > 0), None)

        chunk = wait_for(drawing_chunk, 60, interval=0.02, message="a chunk being drawn")
        pid = stack.worker_pid_of(chunk.id)

        # When its worker process is SIGKILLed half way and the worker command restarted
        with stack.frozen(pid):
            mid = stack.job(chunk.id)
            assert mid.status == "running" and 0 < mid.progress_done <= mid.progress_total
            stack.kill_worker(pid)
        stack.start_workers()

        # Then the reaper re-queues that chunk and the batch completes as one file
        row = stack.wait_status(job.id, "done", timeout=120)
        assert row.attempts == 2  # the highest attempt of its chunks
        assert row.progress_done == row.progress_total == 25 * LOTS
        assert stack.artifact_files() - before == {Path(row.artifact.path)}
        assert stack.temp_files() == []
        pages, _texts = page_texts(stack.data / "artifacts" / row.artifact.path, ())
        assert pages == 25 * LOTS

    def test_a_retried_batch_never_merges_parts_left_from_its_cancelled_attempt(
            self, stack: Stack, app_ctx):
        # Given a two-chunk batch cancelled after its first part was published
        job = cancel_after_first_part(stack, copies=24)

        # When the first lot's data changes and the batch is retried
        with write_txn() as session:  # read-then-write: SQLite's write lock first (DESIGN §8)
            session.get(PottingLot, job.params["lot_ids"][0]).plant_name = "Zzyzx nova"
        retried = jobs.retry(stack.job(job.id))
        assert retried.id == job.id and retried.status == "queued"

        # Then the new file shows the new data on its first page, not the old part's
        row = stack.wait_status(job.id, "done", timeout=120)
        _pages, texts = page_texts(stack.data / "artifacts" / row.artifact.path, (0,))
        assert "Zzyzx nova" in texts[0], texts[0]

    def test_retention_removes_the_parts_of_a_cancelled_batch(self, stack: Stack, app_ctx):
        job = cancel_after_first_part(stack, copies=23)
        folder = stack.data / "artifacts" / "chunks" / job.id
        assert folder.is_dir()

        assert jobs.expire()["chunk_folders"] == 1
        assert not folder.exists()


def cancel_after_first_part(stack: Stack, copies: int) -> Job:
    """Submit a two-chunk batch and cancel it once its first part is published while the
    second is unfinished (its worker held still from the moment it claimed it)."""
    job, _ = jobs.submit(stack.staff(), KIND, {"filter": {}, "copies": copies})

    def second_running() -> Job | None:
        parent = stack.job(job.id)
        assert parent.status in ("queued", "running"), (parent.status, parent.error)
        return next((c for c in chunks_of(job.id)
                     if c.chunk_index == 1 and c.status == "running"), None)

    second = wait_for(second_running, 60, interval=0.01, message="the second chunk to start")
    first_part = stack.data / "artifacts" / "chunks" / job.id / "00000.pdf"
    with stack.frozen(stack.worker_pid_of(second.id)):
        assert stack.job(second.id).status == "running"
        wait_for(first_part.exists, 30, message="the first part to be published")
        jobs.cancel(stack.job(job.id))
    wait_for(lambda: stack.job(second.id).status == "cancelled", 10,
             message="the second chunk to be cancelled")
    assert first_part.exists()
    return stack.job(job.id)
