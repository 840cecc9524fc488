"""Job state transitions (DESIGN §3), driven through the engine's public modules: webapp.jobs
(submit, cancel, retry), its lease (claim), runner and reaper."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import add_user, join_all
from webapp import jobs
from webapp.db import write_txn
from webapp.extensions import db
from webapp.jobs import artifacts
from webapp.jobs.lease import claim
from webapp.jobs.reaper import expire, reap
from webapp.jobs.submit import enqueue, live_twin, look_up
from webapp.messages import Msg
from webapp.models import Artifact, Job, JobStatus, Origin, Role, utcnow

KIND = "potting_lot_labels"


def queued_messages(app) -> list:
    broker = app.extensions["pressroom.broker"]
    return list(broker.queues["pressroom"].queue)


def reload(job: Job) -> Job:
    db.session.commit()  # a new transaction sees the worker's commits (WAL snapshots)
    return db.session.get(Job, job.id)


class TestSubmit:
    def test_a_new_job_is_committed_queued_and_its_id_sent(self, ctx, staff, lots):
        job, created = jobs.submit(staff, KIND, {"lot_ids": [3, 1, 2]})
        assert created and job.status == JobStatus.QUEUED
        assert job.progress_total == 3 and job.sent_at is not None
        messages = queued_messages(ctx)
        assert len(messages) == 1 and job.id in messages[0].decode()

    def test_an_identical_live_job_is_returned_instead_of_a_new_one(self, ctx, staff, lots):
        first, _ = jobs.submit(staff, KIND, {"lot_ids": [1, 2, 3]})
        again, created = jobs.submit(staff, KIND, {"lot_ids": [3, 2, 1, 1]})
        assert not created and again.id == first.id
        assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 1

    def test_a_system_job_is_the_twin_of_a_system_job_only(self, ctx, staff, lots):
        """No owner, no subject (a schedule's or an admin tool's job): its twin is the other
        owner-less live job of the same input, never a user's."""
        mine, _ = jobs.submit(staff, KIND, {"lot_ids": [1, 2]})
        prepared = jobs.prepare(jobs.kind_of(KIND), {"lot_ids": [2, 1]}, staff)

        def as_system() -> tuple[Job, bool]:
            with write_txn() as session:
                return enqueue(session, KIND, None, prepared=prepared, origin=Origin.SCHEDULE)

        system, created = as_system()
        assert created and system.id != mine.id and system.owner_id is None
        again, created = as_system()
        assert not created and again.id == system.id
        digest, session = mine.input_hash, db.session()
        assert live_twin(session, KIND, None, None, digest).id == system.id
        assert live_twin(session, KIND, staff.id, None, digest).id == mine.id

    @pytest.mark.parametrize(
        "owner, subject, index",
        [
            (True, None, "uq_jobs_live_input"),
            (False, None, "uq_jobs_live_input"),
            (True, "work_order:1", "uq_jobs_live_subject"),
        ],
    )
    def test_the_twin_lookups_search_the_live_job_indexes(
        self, make_app, database, owner, subject, index
    ):
        """The live-job indexes are partial (queued or running): SQLite's planner takes one only
        for a query that names those statuses as constants. With them bound, the lookup of every
        submit read all the owner's jobs, or every top-level job for a document with a subject.
        (PostgreSQL is asked with sequential scans off: its tables here are too small to plan
        an index otherwise.)"""
        statements: list[tuple[str, object]] = []

        def keep(conn, cursor, statement, parameters, context, executemany):
            if "FROM jobs" in statement and "input_hash =" in statement:
                statements.append((statement, parameters))

        with make_app(**database).app_context():
            owner_id = add_user().id if owner else None
            sa.event.listen(db.engine, "before_cursor_execute", keep)
            try:
                look_up(db.session(), KIND, owner_id, subject, "0" * 64)
                live_twin(db.session(), KIND, owner_id, subject, "0" * 64)
            finally:
                sa.event.remove(db.engine, "before_cursor_execute", keep)
            assert len(statements) == 2
            connection = db.session.connection()
            postgresql = connection.dialect.name == "postgresql"
            if postgresql:
                connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            explain = "EXPLAIN" if postgresql else "EXPLAIN QUERY PLAN"
            for statement, parameters in statements:
                plan = connection.exec_driver_sql(f"{explain} {statement}", parameters)
                lines = [row[0] if postgresql else row[3] for row in plan]
                scans = [line for line in lines if " jobs" in line]  # "SEARCH jobs", "… on jobs"
                assert scans and all(index in line for line in scans), lines

    def test_a_filter_and_the_ids_it_selects_hash_the_same(self, ctx, staff, lots):
        by_filter = jobs.prepare(jobs.kind_of(KIND), {"filter": {"pot_size": "P9"}}, staff)
        ids = by_filter.params["lot_ids"]
        by_ids = jobs.prepare(jobs.kind_of(KIND), {"lot_ids": list(reversed(ids))}, staff)
        assert ids and jobs.input_hash(KIND, by_filter) == jobs.input_hash(KIND, by_ids)

    def test_changed_source_data_changes_the_input_hash(self, ctx, staff, lots):
        from webapp.models import PottingLot

        before = jobs.input_hash(KIND, jobs.prepare(jobs.kind_of(KIND), {"lot_ids": [1]}, staff))
        db.session.get(PottingLot, 1).plant_name = "Acer campestre"
        db.session.commit()
        after = jobs.input_hash(KIND, jobs.prepare(jobs.kind_of(KIND), {"lot_ids": [1]}, staff))
        assert before != after

    def test_another_users_identical_request_is_done_at_once_with_the_shared_file(
        self, ctx, staff, lots, stub_worker
    ):
        first, _ = jobs.submit(staff, KIND, {"lot_ids": [1, 2]})
        stub_worker()
        other = add_user("other@example.com", role=Role.STAFF)
        second, created = jobs.submit(other, KIND, {"lot_ids": [2, 1]})
        assert created and second.id != first.id
        assert second.status == JobStatus.DONE and second.artifact_id == reload(first).artifact_id
        assert queued_messages(ctx) == []

    @pytest.mark.parametrize(
        "params, field",
        [
            ({}, "lot_ids"),
            ({"lot_ids": []}, "lot_ids"),
            ({"lot_ids": ["1"]}, "lot_ids"),
            ({"lot_ids": [999999]}, "lot_ids"),
            ({"lot_ids": [1], "filter": {}}, "lot_ids"),
            ({"lot_ids": [1], "copies": 0}, "copies"),
            ({"lot_ids": [1], "layout": "a5"}, "layout"),
            ({"lot_ids": [1], "layout": "a4_3x8", "start_position": 25}, "start_position"),
            ({"filter": {"week": "48"}}, "filter.week"),
            ({"filter": {"colour": "red"}}, "filter.colour"),
            ({"filter": {"q": "no such plant anywhere"}}, "filter"),
            ({"lot_ids": [1], "extra": 1}, "extra"),
        ],
    )
    def test_bad_params_are_refused_with_the_field_named(self, ctx, staff, lots, params, field):
        with pytest.raises(jobs.InvalidParams) as info:
            jobs.submit(staff, KIND, params)
        assert list(info.value.fields) == [field]
        assert info.value.fields[field] == info.value.msg and info.value.msg.english()
        assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 0

    @pytest.mark.parametrize(
        "params, field, code, values",
        [
            ({"lot_ids": [1], "copies": 0}, "copies", "field_min", {"limit": 1}),
            ({"lot_ids": [1], "copies": 101}, "copies", "field_max", {"limit": 100}),
            ({"lot_ids": [1], "copies": True}, "copies", "field_integer", {}),
            ({"lot_ids": [1], "copies": 1.0}, "copies", "field_integer", {}),
            ({"lot_ids": [1], "offset_x": "1"}, "offset_x", "field_number", {}),
            ({"lot_ids": [1], "extra": 1}, "extra", "field_unknown", {}),
            (
                {"lot_ids": [1], "layout": "a4_3x8", "start_position": 25},
                "start_position",
                "field_max",
                {"limit": 24},
            ),
            (
                {"filter": {"week": "2026-W60"}},
                "filter.week",
                "week_missing",
                {"year": "2026", "week": 60},
            ),
            ({"lot_ids": [999999]}, "lot_ids", "unknown_lots", {"ids": "999999"}),
        ],
    )
    def test_a_bad_field_carries_a_message_code_not_a_sentence(
        self, ctx, staff, lots, params, field, code, values
    ):
        with pytest.raises(jobs.InvalidParams) as info:
            jobs.submit(staff, KIND, params)
        assert info.value.fields == {field: Msg(code, values)}

    def test_a_list_item_of_the_wrong_type_is_the_lists_error(self, ctx, staff, lots):
        with pytest.raises(jobs.InvalidParams) as info:
            jobs.submit(staff, KIND, {"lot_ids": [1, "2", 3.5]})
        assert info.value.fields == {"lot_ids": Msg("field_integer")}

    def test_a_batch_over_the_label_limit_is_refused_and_nothing_queued(self, make_app):
        app = make_app(MAX_LABELS=50)
        with app.app_context():
            staff = add_user()
            from webapp.nursery.demo import seed_lots

            seed_lots(10)
            with pytest.raises(jobs.InvalidParams, match="limit is 50"):
                jobs.submit(staff, KIND, {"filter": {}, "copies": 6})
            assert queued_messages(app) == []

    def test_an_unknown_kind_is_refused(self, ctx, staff):
        with pytest.raises(jobs.InvalidParams, match="Unknown kind"):
            jobs.submit(staff, "fax", {})


class TestLease:
    def test_only_one_claim_wins_and_it_counts_an_attempt(self, ctx, staff, lots):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        lease = claim(job.id)
        assert lease is not None and lease.attempts == 1
        assert claim(job.id) is None
        row = reload(job)
        assert row.status == JobStatus.RUNNING and row.worker and row.attempts == 1
        assert row.step == Msg("starting") and row.started_at and row.heartbeat_at

    def test_a_cancelled_job_makes_the_next_worker_write_fail(self, ctx, staff, lots):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1, 2]})
        lease = claim(job.id)
        lease.progress(1, "drawing_labels", force=True)
        assert reload(job).progress_done == 1 and reload(job).step == Msg("drawing_labels")
        jobs.cancel(reload(job))
        with pytest.raises(jobs.LeaseLost):
            lease.progress(2, force=True)
        assert reload(job).status == JobStatus.CANCELLED

    def test_a_requeued_job_rejects_the_old_workers_finish(self, ctx, staff, lots):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        old = claim(job.id)
        db.session.execute(sa.update(Job).values(heartbeat_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
        assert reap()["requeued"] == 1
        new = claim(job.id)
        assert new.attempts == 2
        tmp = old.temp_path()
        tmp.write_bytes(b"%PDF-1.4 stale")
        with pytest.raises(jobs.LeaseLost):
            old.finish(tmp, "application/pdf")
        assert reload(job).status == JobStatus.RUNNING and reload(job).artifact_id is None

    def test_transient_errors_retry_with_backoff_until_attempts_run_out(self, ctx, staff, lots):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        busy = Msg("unexpected", {"reason": "mail server busy"})
        for attempt in (1, 2):
            lease = claim(job.id)
            assert lease.attempts == attempt
            lease.retry_later(busy)
            row = reload(job)
            assert row.status == JobStatus.QUEUED and row.error == busy
            assert row.step_code == "retrying_in" and set(row.step_params) == {"seconds"}
            assert row.sent_at > utcnow()  # the delayed send is not due yet
        lease = claim(job.id)
        lease.retry_later(busy)
        row = reload(job)
        assert row.status == JobStatus.FAILED
        assert row.error == Msg("unexpected", {"reason": "mail server busy", "attempts": 3})
        assert row.error.english() == (
            "Unexpected error: mail server busy (gave up after 3 attempts)"
        )

    def test_a_permanent_error_fails_at_once(self, ctx, staff, lots):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        claim(job.id).fail(Msg("lot_deleted", {"id": 1}))
        row = reload(job)
        assert row.status == JobStatus.FAILED and row.attempts == 1 and row.finished_at
        assert (row.error_code, row.error_params) == ("lot_deleted", {"id": 1})  # no sentence
        assert row.error.english() == (
            "Potting lot #1 was deleted after this job was started; print the labels again."
        )


class TestReaper:
    def test_a_silent_running_job_is_requeued_and_sent_again(self, ctx, staff, lots):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        claim(job.id)
        db.session.execute(sa.update(Job).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
        before = len(queued_messages(ctx))
        assert reap() == {"requeued": 1, "failed": 0, "resent": 0, "outbox": 0}
        row = reload(job)
        assert row.status == JobStatus.QUEUED and row.error == Msg("worker_silent")
        assert row.step == Msg("waiting") and row.worker is None
        assert len(queued_messages(ctx)) == before + 1

    def test_a_job_whose_local_worker_process_is_gone_is_requeued_at_once(self, ctx, staff, lots):
        import socket

        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        claim(job.id)
        db.session.execute(sa.update(Job).values(worker=f"{socket.gethostname()}:999999999"))
        db.session.commit()
        assert reap()["requeued"] == 1
        assert reload(job).error == Msg("worker_stopped")

    def test_a_crashed_job_out_of_attempts_fails(self, ctx, staff, lots):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        claim(job.id)
        db.session.execute(
            sa.update(Job).values(attempts=3, heartbeat_at=utcnow() - timedelta(hours=1))
        )
        db.session.commit()
        assert reap()["failed"] == 1
        row = reload(job)
        assert row.status == JobStatus.FAILED
        assert row.error == Msg("worker_silent", {"attempts": 3})
        assert "(gave up after 3 attempts)" in row.error.english()

    def test_queued_jobs_never_sent_are_sent(self, ctx, staff, lots):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        db.session.execute(sa.update(Job).values(sent_at=None))
        db.session.commit()
        assert reap()["resent"] == 1
        assert reload(job).sent_at is not None


class TestUserActions:
    def test_cancelling_a_finished_job_is_a_conflict(self, ctx, staff, lots):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        jobs.cancel(job)
        with pytest.raises(jobs.Conflict):
            jobs.cancel(reload(job))

    def test_retry_runs_a_cancelled_job_again_from_scratch(self, ctx, staff, lots, stub_worker):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        jobs.cancel(job)
        retried = jobs.retry(reload(job))
        assert retried.id == job.id and retried.status == JobStatus.QUEUED and retried.attempts == 0
        stub_worker()
        assert reload(job).status == JobStatus.DONE

    def test_retry_of_a_live_job_is_a_conflict(self, ctx, staff, lots):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        with pytest.raises(jobs.Conflict):
            jobs.retry(job)

    def test_retention_expires_the_file_and_regenerate_brings_it_back(
        self, ctx, staff, lots, stub_worker
    ):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        stub_worker()
        path = artifacts.root() / reload(job).artifact.path
        assert path.exists()
        db.session.execute(sa.update(Artifact).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        assert expire()["files"] == 1
        assert reload(job).status == JobStatus.EXPIRED and not path.exists()
        jobs.retry(reload(job))
        stub_worker()
        assert reload(job).status == JobStatus.DONE and path.exists()


class TestBigBatches:
    def test_a_big_batch_is_split_rendered_in_chunks_and_merged_in_order(self, make_app):
        app = make_app(CHUNK_LABELS=25)
        with app.app_context():
            import dramatiq
            import pypdfium2

            import workers.actors  # noqa: F401
            from webapp.nursery.demo import seed_lots
            from workers.broker import setup

            staff = add_user()
            seed_lots(40)
            broker = setup(app)
            worker = dramatiq.Worker(broker, worker_threads=2)
            worker.start()
            try:
                job, _ = jobs.submit(staff, KIND, {"filter": {}, "copies": 2})
                join_all(broker, worker)
            finally:
                worker.stop()
            row = reload(job)
            assert row.status == JobStatus.DONE, row.error
            assert row.progress_done == row.progress_total == 80
            assert (
                db.session.scalar(sa.select(sa.func.count(Job.id)).where(Job.parent_id == job.id))
                == 0
            )
            pdf = pypdfium2.PdfDocument(str(artifacts.root() / row.artifact.path))
            try:
                assert len(pdf) == 80
                texts = [pdf[i].get_textpage().get_text_range() for i in (0, 1, 2, 79)]
            finally:
                pdf.close()
            numbers = (row.summary["first"], row.summary["last"])
            assert (
                numbers[0] in texts[0] and numbers[0] in texts[1]
            )  # two copies, then the next lot
            assert numbers[0] not in texts[2] and numbers[1] in texts[3]


class TestFairness:
    def test_chunks_wait_in_the_bulk_queue_behind_whole_jobs(self, make_app):
        """Given a batch big enough to split, its chunks go to the bulk queue whose actor has a
        lower priority than whole jobs, so a worker holding both takes another user's job first."""
        app = make_app(CHUNK_LABELS=10)
        with app.app_context():
            import workers.actors as actors
            from webapp.jobs.queues import BULK_QUEUE, QUEUE
            from webapp.jobs.runner import run
            from webapp.nursery.demo import seed_lots

            staff = add_user()
            seed_lots(30)
            job, _ = jobs.submit(staff, KIND, {"filter": {}})
            run(job.id)  # the parent's message: it splits
            broker = app.extensions["pressroom.broker"]
            chunk_messages = [m.decode() for m in broker.queues[BULK_QUEUE].queue]
            assert len(chunk_messages) == 3 and all("render_chunk" in m for m in chunk_messages)
            assert len(broker.queues[QUEUE].queue) == 1  # only the parent's own message
            assert actors.render_chunk.queue_name == BULK_QUEUE
            assert actors.render_chunk.priority > actors.render_job.priority  # lower = first
