"""Big batches (DESIGN §3): split into chunks, rendered by two real worker processes, merged.

Tests that need a chunk half way use the `test_paced` kind (tests/support/paced.py): its gate
lets each chunk take as many steps as the test allows, so nothing races the renderer.
"""

from __future__ import annotations

from pathlib import Path

import pypdfium2
import pytest
import sqlalchemy as sa

from tests.conftest import wait_for
from tests.services import Stack
from webapp import jobs
from webapp.extensions import db
from webapp.jobs import reaper
from webapp.models import Job, PottingLot

pytestmark = pytest.mark.integration

KIND = "potting_lot_labels"
LOTS = 200
CHUNK = 2500
STEPS = CHUNK + 500  # a paced batch of two chunks: 2,500 steps and 500
# An idle worker process polls Redis every 0.1 s (1 s by default), so chunks start at once.
STACK = {
    "processes": 2,
    "lots": LOTS,
    "web": False,
    "env": {"CHUNK_LABELS": str(CHUNK), "dramatiq_worker_timeout": "100"},
}


def chunks_of(job_id: str) -> list[Job]:
    db.session.commit()  # a fresh snapshot: the workers commit all the time
    return sorted(
        db.session.scalars(sa.select(Job).where(Job.parent_id == job_id)),
        key=lambda chunk: chunk.chunk_index,
    )


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


def step_text(job: Job, index: int) -> str:
    """What the paced kind prints on the page of step `index` (0-based)."""
    return f"{job.params['gate']} step {index + 1} of {job.progress_total}"


class TestChunkedBatches:
    """A batch over CHUNK_LABELS is rendered in parts in parallel and published as one file."""

    def test_a_big_batch_is_rendered_by_both_processes_and_merged_in_order(
        self, stack: Stack, app_ctx
    ):
        # Given a paced batch of two chunks
        job = stack.submit_paced(steps=STEPS)

        # When its gate is shut, each worker process holds one of its chunks: both at once
        def both_held() -> list[Job] | None:
            parent = stack.job(job.id)
            assert parent.status in ("queued", "running"), (parent.status, parent.error)
            chunks = chunks_of(job.id)
            held = len(chunks) == 2 and all(c.status == "running" for c in chunks)
            return chunks if held else None

        chunks = wait_for(both_held, 60, message="both chunks to be held by a worker")
        assert len({stack.worker_pid_of(c.id) for c in chunks}) == 2
        # … and the parent shows their combined progress as the test lets them on
        stack.allow(job, 200)
        stack.wait_steps(job.id, 2 * 200)
        stack.allow(job, 500)  # the small chunk finishes, the big one holds at 500
        stack.wait_steps(job.id, 500 + 500)
        stack.allow(job, STEPS)
        progress: list[int] = []

        def finished() -> bool:
            parent = stack.job(job.id)
            assert parent.status in ("running", "done"), (parent.status, parent.error)
            progress.append(parent.progress_done)
            return parent.status == "done"

        wait_for(finished, 120, interval=0.02, message="the big batch to finish")

        # Then the parent's progress only grew, and it finished on its first attempt
        assert progress == sorted(progress) and progress[0] >= 1000 and progress[-1] == STEPS
        row = stack.job(job.id)
        assert row.attempts == 1 and row.chunks_total == 2
        # The merging worker removes the chunk rows and files right after publishing the file
        parts = stack.data / "artifacts" / "chunks" / job.id
        wait_for(
            lambda: not chunks_of(job.id) and not parts.exists(),
            10,
            message="the chunk rows and files to be removed",
        )
        # … and the merged file has every page in order, across the seam between the chunks
        probes = (0, 1, CHUNK - 1, CHUNK, STEPS - 1)
        pages, texts = page_texts(stack.data / "artifacts" / row.artifact.path, probes)
        assert pages == STEPS
        for index, text in zip(probes, texts, strict=True):
            assert step_text(row, index) in text, (index, text)

    def test_a_chunked_label_batch_has_every_label_in_order_across_the_seam(
        self, stack: Stack, app_ctx
    ):
        # Given 4,000 labels (200 lots × 20 copies): two chunks, 2,500 + 1,500
        job, created = jobs.submit(stack.staff(), KIND, {"filter": {}, "copies": 20})
        assert created and job.progress_total == 20 * LOTS
        numbers = dict(db.session.execute(sa.select(PottingLot.id, PottingLot.lot_number)).all())
        expected = [numbers[lot_id] for lot_id in job.params["lot_ids"] for _copy in range(20)]

        # When the workers have rendered and merged it
        row = stack.wait_status(job.id, "done", timeout=120)
        assert row.chunks_total == 2

        # Then the file has every label in order, across the seam between the chunks
        probes = (0, 19, 20, CHUNK - 1, CHUNK, 20 * LOTS - 1)
        pages, texts = page_texts(stack.data / "artifacts" / row.artifact.path, probes)
        assert pages == 20 * LOTS
        for index, text in zip(probes, texts, strict=True):
            assert expected[index] in text, (index, expected[index], text)
        assert expected[CHUNK - 1] != expected[CHUNK] and expected[19] != expected[20]

    def test_a_chunk_whose_worker_was_killed_is_recovered_and_the_batch_completes(
        self, stack: Stack, app_ctx
    ):
        before = stack.artifact_files()
        # Given a batch whose small chunk is done and whose big one a worker holds half way
        job = stack.submit_paced(steps=STEPS)
        stack.allow(job, 1000)
        wait_for(
            lambda: [c.status for c in chunks_of(job.id)] == ["running", "done"],
            60,
            message="the small chunk to finish",
        )
        chunk = chunks_of(job.id)[0]
        stack.wait_steps(chunk.id, 1000)
        pid = stack.worker_pid_of(chunk.id)

        # When its worker process is SIGKILLed half way (the rest allowed to whoever runs it
        # next) and the worker command restarted
        with stack.frozen(pid):
            stack.allow(job, STEPS)
            stack.kill_worker(pid)
        stack.start_workers()

        # Then the reaper re-queues that chunk and the batch completes as one file
        row = stack.wait_status(job.id, "done", timeout=120)
        assert row.attempts == 2  # the highest attempt of its chunks
        assert row.progress_done == row.progress_total == STEPS
        assert stack.artifact_files() - before == {Path(row.artifact.path)}
        assert stack.temp_files() == []
        pages, _texts = page_texts(stack.data / "artifacts" / row.artifact.path, ())
        assert pages == STEPS

    def test_a_retried_batch_never_merges_parts_left_from_its_cancelled_attempt(
        self, stack: Stack, app_ctx
    ):
        # Given a two-chunk batch cancelled after its small part was published
        job = cancel_after_one_part(stack)
        cancelled_run = job.started_at

        # When the batch is retried (a new run) and allowed to finish
        retried = jobs.retry(stack.job(job.id))
        assert retried.id == job.id and retried.status == "queued"
        stack.allow(job, STEPS)

        # Then the new file's pages of that part come from the new run, not the old part
        row = stack.wait_status(job.id, "done", timeout=120)
        assert row.started_at != cancelled_run
        _pages, texts = page_texts(stack.data / "artifacts" / row.artifact.path, (CHUNK,))
        assert f"{step_text(row, CHUNK)}\r\nrun {row.started_at.isoformat()}" in texts[0], texts

    def test_retention_removes_parts_a_cancelled_batch_left_behind(self, stack: Stack, app_ctx):
        # The stopping worker removes them at once (cancel_after_one_part); parts left by a
        # worker killed before it could are removed by the retention run
        job = cancel_after_one_part(stack)
        folder = stack.data / "artifacts" / "chunks" / job.id
        folder.mkdir(parents=True)
        (folder / "00001.pdf").write_bytes(b"%PDF-1.4 left behind")

        assert reaper.expire()["chunk_folders"] == 1
        assert not folder.exists()


def cancel_after_one_part(stack: Stack) -> Job:
    """Submit a paced two-chunk batch and cancel it once its small part (index 1) is published
    while a worker holds the big one half way; return it after that worker has stopped and
    removed the cancelled batch's parts (at once, not at the hourly retention)."""
    job = stack.submit_paced(steps=STEPS)
    stack.allow(job, 500)
    part = stack.data / "artifacts" / "chunks" / job.id / "00001.pdf"
    wait_for(part.exists, 60, message="the small part to be published")
    big = chunks_of(job.id)[0]
    stack.wait_steps(big.id, 500)

    jobs.cancel(stack.job(job.id))
    wait_for(
        lambda: f"job {big.id}: lease lost" in stack.worker.output(),
        10,
        message="the big chunk's worker to stop",
    )
    assert stack.job(big.id).status == "cancelled"
    wait_for(lambda: not part.parent.exists(), 10, message="the cancelled batch's parts to go")
    return stack.job(job.id)
