"""The job lifecycle (DESIGN §3, §7) with real parts: redis-server, Dramatiq worker processes,
gunicorn and the scheduler's reaper, all started by tests/services.py for this module.

A test that needs a job half way (crash, hang, cancel) uses the `test_paced` kind
(tests/support/paced.py), which takes a step only when the test allows it: racing the label
renderer made this module flaky (DESIGN §8).
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pikepdf
import pytest
import sqlalchemy as sa

from tests.conftest import wait_for
from tests.services import FILE_NAME, Stack, http_request
from webapp import jobs
from webapp.extensions import db
from webapp.models import Artifact, Job, User

pytestmark = pytest.mark.integration

KIND = "potting_lot_labels"
RESENT = re.compile(r"reaper re-sent \d+ queued jobs \([1-9]\d* reached the broker\)")
LOTS = 200
# Not chunked here (big batches have their own module), so one process renders a whole job.
STACK = {"processes": 2, "lots": LOTS, "env": {"CHUNK_LABELS": "50000"}}


def submit(stack: Stack, params: dict) -> dict:
    answer = stack.api("POST", "/api/v1/jobs", json_body={"kind": KIND, "params": params})
    assert answer.status == 202, (answer.status, answer.body)
    return answer.json()


def page_count(data: bytes) -> int:
    with pikepdf.open(io.BytesIO(data)) as pdf:
        return len(pdf.pages)


def artifacts_for(input_hash: str) -> int:
    return db.session.scalar(
        sa.select(sa.func.count(Artifact.id)).where(Artifact.input_hash == input_hash)
    )


class TestSubmitAndDownload:
    """A job goes from submit to a downloadable file through the real worker and web server."""

    def test_a_submitted_job_is_rendered_and_served_with_etag_and_ranges(self, stack, app_ctx):
        # Given a job for every lot, two copies each
        job = submit(stack, {"filter": {}, "copies": 2})
        assert job["status"] == "queued" and job["progress"]["total"] == 2 * LOTS

        # When a real worker has rendered it
        row = stack.wait_status(job["id"], "done")
        assert row.attempts == 1 and row.progress_done == row.progress_total == 2 * LOTS
        described = stack.api("GET", f"/api/v1/jobs/{job['id']}").json()
        info = described["file"]
        assert described["status"] == "done" and FILE_NAME.fullmatch(info["name"]), described
        assert info["url"] == f"{stack.base_url}/api/v1/jobs/{job['id']}/file"

        # Then the file is a PDF with one label per page, served with its sha256 as ETag
        path = f"/api/v1/jobs/{job['id']}/file"
        whole = stack.api("GET", path)
        assert whole.status == 200 and whole.body.startswith(b"%PDF-")
        assert len(whole.body) == info["size"]
        assert hashlib.sha256(whole.body).hexdigest() == info["sha256"]
        assert page_count(whole.body) == 2 * LOTS
        etag = f'"{info["sha256"]}"'
        assert whole.header("ETag") == etag
        assert whole.header("Accept-Ranges") == "bytes" and whole.header("Last-Modified")
        assert whole.header("Content-Type") == "application/pdf"
        disposition = whole.header("Content-Disposition")
        assert disposition.startswith("attachment;")
        assert f'filename="{info["name"]}"' in disposition
        assert f"filename*=UTF-8''{info['name']}" in disposition

        # And a range request gets 206 with exactly those bytes
        part = stack.api("GET", path, headers={"Range": "bytes=100-1123"})
        assert part.status == 206 and part.body == whole.body[100:1124]
        assert part.header("Content-Range") == f"bytes 100-1123/{len(whole.body)}"
        # … If-Range with the current ETag keeps the range, a stale one gets the whole file
        same = stack.api("GET", path, headers={"Range": "bytes=0-9", "If-Range": etag})
        assert same.status == 206 and same.body == whole.body[:10]
        stale = stack.api("GET", path, headers={"Range": "bytes=0-9", "If-Range": '"0123"'})
        assert stale.status == 200 and stale.body == whole.body
        # … and a client that has the file already gets 304
        cached = stack.api("GET", path, headers={"If-None-Match": etag})
        assert cached.status == 304 and cached.body == b""

    def test_a_file_request_without_a_token_is_refused_with_json(self, stack):
        answer = http_request("GET", f"{stack.base_url}/api/v1/jobs")
        assert answer.status == 401 and answer.json()["error"]["code"] == "unauthorized"


class TestWorkerCrash:
    """A SIGKILLed worker's job finishes after the restart, without anyone doing anything."""

    def test_a_job_whose_worker_was_killed_mid_way_finishes_on_attempt_two(self, stack, app_ctx):
        before = stack.artifact_files()
        # Given a job of five steps whose worker has drawn two and waits for the third
        job = stack.submit_paced(steps=5)
        stack.allow(job, 2)
        stack.wait_steps(job.id, 2)
        pid = stack.worker_pid_of(job.id)

        # When that worker process is SIGKILLed half way, the rest of the job allowed to
        # whoever runs it next (the other process may take it before Dramatiq's master stops it)
        with stack.frozen(pid):
            stack.allow(job, 5)
            stack.kill_worker(pid)
        assert not stack.worker.running  # Dramatiq's master exits when a child dies
        # … and the worker command is restarted (what `pressroom run` does)
        stack.start_workers()

        # Then the reaper notices the dead process, re-queues the job, and it finishes
        row = stack.wait_status(job.id, "done", timeout=120)
        assert row.attempts == 2
        assert f"job {job.id} re-queued by the reaper" in stack.scheduler.output()
        # … with exactly one new file, which is complete
        assert stack.artifact_files() - before == {Path(row.artifact.path)}
        assert artifacts_for(row.input_hash) == 1
        assert stack.temp_files() == []
        data = (stack.data / "artifacts" / row.artifact.path).read_bytes()
        assert page_count(data) == 5


class TestSilentWorker:
    """A worker that stops answering loses its job to another and can never publish."""

    def test_a_hung_workers_job_is_finished_by_another_and_the_hung_one_publishes_nothing(
        self, stack, app_ctx
    ):
        # The reaper with a 3 s heartbeat limit (60 s in production) for this test only
        stack.scheduler.stop()
        stack.start_scheduler(HEARTBEAT_STALE_S="3")
        try:
            before = stack.artifact_files()
            # Given a job of four steps whose worker has drawn two and waits for the third
            job = stack.submit_paced(steps=4)
            stack.allow(job, 2)
            stack.wait_steps(job.id, 2)
            hung = stack.worker_pid_of(job.id)

            # When its worker hangs half way (SIGSTOP) for longer than the heartbeat limit
            with stack.frozen(hung):
                stack.allow(job, 4)  # what is left may be drawn, but not by the hung worker
                # Then the reaper re-queues the job and the other worker finishes it
                row = stack.wait_status(job.id, "done", timeout=90)
                assert row.attempts == 2 and stack.worker_pid_of(job.id) != hung
            # … and once the hung worker wakes up, its next write fails and it stops
            wait_for(
                lambda: f"job {job.id}: lease lost at attempt 1" in stack.worker.output(),
                10,
                message="the woken worker to notice that it lost the job",
            )
            assert stack.job(job.id).status == "done" and stack.job(job.id).attempts == 2
            assert stack.artifact_files() - before == {Path(row.artifact.path)}
            assert stack.temp_files() == []
        finally:
            stack.scheduler.stop()
            stack.start_scheduler()


class TestCancel:
    """Cancel is cooperative: the worker stops within 2 s and publishes nothing."""

    def test_cancelling_a_running_job_stops_its_worker_within_two_seconds(self, stack, app_ctx):
        before = stack.artifact_files()
        # Given a job of five steps whose worker has drawn one and waits for the second
        job = stack.submit_paced(steps=5)
        stack.allow(job, 1)
        stack.wait_steps(job.id, 1)

        # When it is cancelled through the API
        started = time.monotonic()
        answer = stack.api("POST", f"/api/v1/jobs/{job.id}/cancel")
        assert answer.status == 200 and answer.json()["status"] == "cancelled"
        # Then its worker stops within 2 s of the request
        left = 2.0 - (time.monotonic() - started)
        wait_for(
            lambda: f"job {job.id}: lease lost" in stack.worker.output(),
            left,
            interval=0.02,
            message="the worker to stop the cancelled job",
        )

        # … and has published nothing
        row = stack.job(job.id)
        assert row.status == "cancelled" and row.artifact_id is None and row.progress_done == 1
        assert artifacts_for(row.input_hash) == 0
        assert stack.artifact_files() == before and stack.temp_files() == []
        assert stack.api("GET", f"/api/v1/jobs/{job.id}/file").status == 409
        assert stack.api("POST", f"/api/v1/jobs/{job.id}/cancel").status == 409

    def test_a_cancelled_job_can_be_retried_and_then_finishes(self, stack, app_ctx):
        # Given a job cancelled while a worker held it at its (shut) gate, and that worker stopped
        job = stack.submit_paced(steps=3)
        stack.wait_steps(job.id, 0)
        assert stack.api("POST", f"/api/v1/jobs/{job.id}/cancel").json()["status"] == "cancelled"
        wait_for(
            lambda: f"job {job.id}: lease lost" in stack.worker.output(),
            10,
            message="the worker to stop the cancelled job",
        )

        # When it is retried (the workers held still, so the answer is not a race with a claim)
        with stack.workers_frozen():
            answer = stack.api("POST", f"/api/v1/jobs/{job.id}/retry")
        assert answer.status == 202 and answer.json()["id"] == job.id
        assert answer.json()["status"] == "queued" and answer.json()["attempts"] == 0

        # Then it runs again from the start and finishes
        stack.allow(job, 3)
        row = stack.wait_status(job.id, "done")
        assert row.attempts == 1 and row.error is None
        assert stack.api("GET", f"/api/v1/jobs/{job.id}/file").status == 200
        assert stack.api("POST", f"/api/v1/jobs/{job.id}/retry").status == 409


class TestConcurrentSubmits:
    """20 identical submits at the same moment make one job (DESIGN §3: unique live index)."""

    def _burst(self, stack: Stack, send) -> list[str]:  # type: ignore[no-untyped-def]
        barrier = threading.Barrier(20)

        def one(_: int) -> str:
            barrier.wait(10)
            return send()

        # The workers are held still, so the job stays live during the burst: a finished job
        # would rightly give a 21st identical submit a new (done) job sharing the file.
        with stack.workers_frozen(), ThreadPoolExecutor(20) as pool:
            return list(pool.map(one, range(20)))

    def test_twenty_concurrent_http_posts_create_one_job(self, stack, app_ctx):
        body = {"kind": KIND, "params": {"filter": {}, "copies": 3}}
        answers = []

        def post() -> str:
            answer = stack.api("POST", "/api/v1/jobs", json_body=body)
            answers.append(answer.status)
            return answer.json()["id"]

        ids = self._burst(stack, post)
        assert len(set(ids)) == 1
        assert sorted(answers) == [200] * 19 + [202]
        row = stack.wait_status(ids[0], "done")
        assert (
            db.session.scalar(
                sa.select(sa.func.count(Job.id)).where(
                    Job.input_hash == row.input_hash, Job.parent_id.is_(None)
                )
            )
            == 1
        )

    def test_twenty_concurrent_engine_submits_in_threads_create_one_job(self, stack, app_ctx):
        staff_id = stack.staff().id

        def submit_in_own_context() -> str:
            with stack.context():
                job, _created = jobs.submit(
                    db.session.get(User, staff_id), KIND, {"filter": {}, "copies": 4}
                )
                return job.id

        ids = self._burst(stack, submit_in_own_context)
        assert len(set(ids)) == 1
        row = stack.wait_status(ids[0], "done")
        assert (
            db.session.scalar(
                sa.select(sa.func.count(Job.id)).where(
                    Job.input_hash == row.input_hash, Job.parent_id.is_(None)
                )
            )
            == 1
        )


class TestRedisOutages:
    """Queued work survives a Redis restart; a submit while Redis is down still answers."""

    DATABASES = ("sqlite",)  # Redis going away, not the database

    def test_jobs_queued_before_a_redis_restart_run_after_it(self, stack, app_ctx):
        # Given no workers and three queued jobs whose messages are in Redis
        stack.stop_workers()
        try:
            ids = [submit(stack, {"lot_ids": [n, n + 1], "copies": 2})["id"] for n in (11, 21, 31)]
            sent = {job_id: stack.job(job_id).sent_at for job_id in ids}
            assert all(sent.values())

            # When Redis restarts (SIGTERM, then the same data directory)
            stack.stop_redis()
            stack.start_redis()
            messages = b"".join(stack.redis_client().hvals("pressroom:pressroom.msgs"))
            assert all(job_id.encode() in messages for job_id in ids)
        finally:
            stack.start_workers()

        # Then the workers run them from the persisted queue, without the reaper re-sending
        for job_id in ids:
            row = stack.wait_status(job_id, "done")
            assert row.attempts == 1 and row.sent_at == sent[job_id]

    def test_a_submit_while_redis_is_down_answers_and_the_reaper_sends_it_later(
        self, stack, app_ctx
    ):
        log_mark = len(stack.scheduler.output())
        stack.stop_redis()
        try:
            started = time.monotonic()
            job = submit(stack, {"lot_ids": [41, 42, 43]})
            took = time.monotonic() - started
            assert took < 5, f"the submit took {took:.1f} s while Redis was down"
            assert http_request("GET", stack.base_url + "/healthz").status == 503
            assert stack.job(job["id"]).status == "queued"
        finally:
            stack.start_redis()

        row = stack.wait_status(job["id"], "done", timeout=60)
        assert row.attempts == 1
        assert RESENT.search(stack.scheduler.output()[log_mark:])
        assert http_request("GET", stack.base_url + "/healthz").status == 200


class TestUnwritableArtifacts:
    """An artifact directory that cannot be written fails the job clearly; nothing is served."""

    def test_the_job_fails_after_its_retries_and_a_retry_works_once_fixed(self, stack, app_ctx):
        # Given a regular file where the artifact directory should be: every write fails,
        # even for root (chmod would not stop root)
        artifacts = stack.data / "artifacts"
        aside = stack.data / "artifacts.aside"
        artifacts.rename(aside)
        try:
            artifacts.write_text("not a directory\n")
            job = submit(stack, {"lot_ids": [5, 6, 7]})
            row = stack.wait_status(job["id"], "failed", timeout=60)
            described = stack.api("GET", f"/api/v1/jobs/{job['id']}").json()
            refused = stack.api("GET", f"/api/v1/jobs/{job['id']}/file")
        finally:
            artifacts.unlink()
            aside.rename(artifacts)

        # Then the job failed after its three attempts with an error a person can act on
        assert row.attempts == 3
        assert row.error_code == "not_writable", row.error
        assert row.error_params == {"attempts": 3}
        # … and no file is served or recorded
        assert described["status"] == "failed" and described["file"] is None
        assert refused.status == 409 and refused.json()["error"]["code"] == "conflict"
        assert artifacts_for(row.input_hash) == 0 and stack.temp_files() == []

        # When it is retried after the directory was fixed, it finishes
        assert stack.api("POST", f"/api/v1/jobs/{job['id']}/retry").status == 202
        done = stack.wait_status(job["id"], "done")
        assert done.attempts == 1 and done.error is None
        assert stack.api("GET", f"/api/v1/jobs/{job['id']}/file").status == 200
