"""Recovery and retention decide on what they saw, under the write lock, and share files safely."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import sqlalchemy as sa

from tests.conftest import job_in
from webapp import jobs
from webapp.db import write_txn
from webapp.extensions import db
from webapp.jobs import artifacts, transitions
from webapp.jobs.reaper import expire
from webapp.messages import Msg
from webapp.models import Artifact, Job, utcnow

KIND = "potting_lot_labels"


class TestRetention:
    def test_a_file_two_inputs_share_stays_while_one_of_them_is_still_kept(self, ctx, staff, lots):
        # Given two artifacts (two inputs) whose bytes are the same: one content-addressed file
        first = db.session.get(Job, job_in("done", lot_ids=[1]))
        second = db.session.get(Job, job_in("done", lot_ids=[2]))
        shared = first.artifact
        second.artifact.path, second.artifact.sha256 = shared.path, shared.sha256
        shared.expires_at = utcnow() - timedelta(days=1)
        db.session.commit()

        # When retention expires the older one
        result = expire()

        # Then its job is expired, but the file stays for the other, still downloadable
        assert result["files"] == 1 and result["jobs"] == 1
        assert db.session.get(Job, first.id).status == "expired"
        assert (artifacts.root() / second.artifact.path).is_file()
        assert db.session.get(Job, second.id).status == "done"

    def test_a_file_reused_after_the_retention_run_read_it_is_not_removed(self, ctx, staff, lots):
        """The run reads the expired rows first; each is checked again under the write lock."""
        job = db.session.get(Job, job_in("done", lot_ids=[1]))
        artifact_id, path = job.artifact.id, job.artifact.path
        job.artifact.expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
        original = db.session.execute

        def reuse_after_the_read(statement, *args, **kwargs):  # a submit reused it meanwhile
            result = original(statement, *args, **kwargs)
            if "artifacts.expires_at <" in str(statement) and "artifacts.path" in str(statement):
                with db.engine.begin() as conn:
                    conn.execute(
                        sa.update(Artifact)
                        .where(Artifact.id == artifact_id)
                        .values(expires_at=utcnow() + timedelta(days=7))
                    )
            return result

        db.session.execute = reuse_after_the_read  # type: ignore[method-assign]
        try:
            assert expire()["files"] == 0
        finally:
            del db.session.execute
        assert (artifacts.root() / path).is_file()
        assert db.session.get(Job, job.id).status == "done"

    def test_an_artifact_whose_file_is_gone_is_rendered_again_not_handed_out(
        self, ctx, staff, lots
    ):
        done = db.session.get(Job, job_in("done", lot_ids=[1]))
        (artifacts.root() / done.artifact.path).unlink()
        again, created = jobs.submit(staff, KIND, dict(done.params))
        assert created and again.id != done.id
        assert again.status == "queued" and again.artifact_id is None


class TestReaperSnapshot:
    def test_a_reap_decided_on_an_older_claim_leaves_the_new_claim_alone(self, ctx, staff, lots):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        with write_txn() as session:
            first = transitions.claim(session, job.id, "host:1")
        seen = SimpleNamespace(id=job.id, claims=first.claims, parent_id=None, progress_done=0)
        # Another scheduler reaped that claim and a worker claimed the job again meanwhile
        with write_txn() as session:
            assert transitions.reap(session, seen, Msg("worker_silent"))
        with write_txn() as session:
            assert transitions.claim(session, job.id, "host:2") is not None
        # This scheduler still acts on what it saw: nothing changes
        with write_txn() as session:
            assert not transitions.reap(session, seen, Msg("worker_silent"))
        db.session.refresh(job)
        assert job.status == "running" and job.worker == "host:2"
