"""Admin work with real parts (DESIGN §4b, §6, §7): a staff job submitted during a regeneration finishes before it, ahead of the queued documents;
a paused queue holds its jobs until resumed; /metrics merges the counters of every process."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_for
from tests.services import ADMIN, Stack
from webapp.auth import create_token
from webapp.db import write_txn
from webapp.extensions import db
from webapp.lab.demo import seed_lab
from webapp.lab.service import queue_documents
from webapp.models import Job, User

pytestmark = pytest.mark.integration

STACK = {"processes": 2, "lots": 50}
PROTOCOLS = 240
# Queue priorities, a paused queue (Redis switches) and metric files: not the database's
# doing, so SQLite only; the schedules (a period's unique row) are in test_schedules.py.
DATABASES = ("sqlite",)


@pytest.fixture(scope="module")
def admin_token(stack: Stack) -> str:
    with stack.context():
        ids = seed_lab(PROTOCOLS)
        with write_txn() as session:
            queue_documents(session, ids)
        admin = db.session.scalars(sa.select(User).filter_by(email=ADMIN[0])).one()
        return create_token(admin)


def all_labels_done(stack: Stack) -> None:
    def done() -> bool:
        db.session.commit()
        return not db.session.scalar(
            sa.select(sa.func.count(Job.id)).where(Job.status.in_(("queued", "running")))
        )

    wait_for(done, 120, interval=0.2, message="every seeded label")


class TestRegenerationAndStaff:
    def test_a_staff_job_during_a_regeneration_finishes_ahead_of_its_documents(
        self, stack, app_ctx, admin_token
    ):
        all_labels_done(stack)
        regen = stack.api(
            "POST",
            "/api/v1/jobs",
            token=admin_token,
            json_body={
                "kind": "regenerate",
                "params": {"kind": "reception_label", "scope": "all", "force": True},
            },
        )
        assert regen.status == 202, regen.body
        regen_id = regen.json()["id"]

        def documents_queued() -> int:
            db.session.commit()
            return db.session.scalar(
                sa.select(sa.func.count(Job.id)).where(
                    Job.batch_id == regen_id, Job.status == "queued"
                )
            )

        wait_for(
            lambda: documents_queued() >= 50, 60, message="the regeneration's documents queued"
        )
        staff = stack.api(
            "POST",
            "/api/v1/jobs",
            json_body={"kind": "potting_lot_labels", "params": {"lot_ids": [1, 2, 3]}},
        )
        assert staff.status == 202, staff.body
        stack.wait_status(staff.json()["id"], "done", timeout=60)
        waiting = documents_queued()
        assert waiting > 0, "the staff job should not have waited for the regeneration's documents"
        done = stack.wait_status(regen_id, "done", timeout=180)
        items = stack.api("GET", f"/api/v1/jobs/{regen_id}", token=admin_token).json()["items"]
        assert items == {"done": PROTOCOLS, "failed": 0, "skipped": 0} and done.attempts == 1


class TestPausedQueue:
    def test_a_paused_queue_holds_its_jobs_until_resumed(self, stack, app_ctx, admin_token):
        redis = stack.redis_client()
        redis.sadd("pressroom:paused", "pressroom")
        try:
            job = stack.api(
                "POST",
                "/api/v1/jobs",
                json_body={"kind": "potting_lot_labels", "params": {"lot_ids": [4, 5]}},
            )
            assert job.status == 202
            job_id = job.json()["id"]
            line = f"queue pressroom is paused: render_job('{job_id}',) waits"
            wait_for(
                lambda: line in stack.worker.output(),
                30,
                message="the message put back while paused",
            )
            assert stack.job(job_id).status == "queued"
        finally:
            redis.srem("pressroom:paused", "pressroom")
        stack.wait_status(job_id, "done", timeout=60)


class TestMetrics:
    def test_counters_of_every_process_are_merged(self, stack, app_ctx, admin_token):
        all_labels_done(stack)  # the seeded documents: counted by the workers that rendered them
        staff = stack.api("GET", "/metrics")  # (the stack's own token is a staff member's)
        assert staff.status == 403
        answer = stack.api("GET", "/metrics", token=admin_token)
        assert answer.status == 200, answer.body[:500]
        families = {f.name: f for f in text_string_to_metric_families(answer.body.decode())}
        done = {
            s.labels["kind"]: s.value
            for s in families["pressroom_jobs"].samples
            if s.name == "pressroom_jobs_total" and s.labels["status"] == "done"
        }
        assert done.get("reception_label", 0) >= PROTOCOLS  # counted in the worker processes
        alive = [s.value for s in families["pressroom_workers_alive"].samples]
        assert alive == [2.0]
        queues = {s.labels["queue"] for s in families["pressroom_queue_length"].samples}
        assert queues == {"pressroom", "pressroom-bulk"}
        assert os.path.isdir(stack.data / "metrics")
