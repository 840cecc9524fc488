"""One transitions module owns job state: the table, compare-and-set, signals, no other UPDATE."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict

from tests.conftest import add_user
from webapp import ROOT, documents, jobs
from webapp.db import write_txn
from webapp.documents import DocumentKind, Prepared
from webapp.extensions import db
from webapp.jobs import transitions
from webapp.jobs.transitions import TABLE, job_changed
from webapp.messages import Msg
from webapp.models import Job, JobStatus, Origin

KIND = "potting_lot_labels"


def updates_of_jobs(path: Path) -> list[int]:
    """Lines of `path` that build an UPDATE on the Job model (sa.update(Job), update(Job))."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Name):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "update" and node.args[0].id == "Job":
                lines.append(node.lineno)
    return lines


class TestTheTable:
    def test_no_module_but_transitions_issues_an_update_on_jobs(self):
        offenders = {
            str(p.relative_to(ROOT)): lines
            for p in sorted((ROOT / "webapp").rglob("*.py"))
            + sorted((ROOT / "workers").rglob("*.py"))
            if p.name != "transitions.py" and (lines := updates_of_jobs(p))
        }
        assert offenders == {}
        assert updates_of_jobs(
            ROOT / "webapp" / "jobs" / "transitions.py"
        )  # the check can see them

    def test_every_transition_leads_to_a_known_state_from_known_states(self):
        states = {s.value for s in JobStatus}
        for name, (froms, to) in TABLE.items():
            assert to in states, name
            assert all(f is None or f in states for f in froms), name

    def test_the_design_transitions_are_all_named(self):
        for name in (
            "submit",
            "claim",
            "progress",
            "finish",
            "fail",
            "retry_later",
            "cancel",
            "retry",
            "reap",
            "expire",
        ):
            assert name in TABLE


@pytest.fixture
def seen() -> Any:
    events: list[tuple[str, str | None, str]] = []

    def receiver(name: str, **kw: Any) -> None:
        events.append((name, kw["old"], kw["new"]))

    job_changed.connect(receiver)
    yield events
    job_changed.disconnect(receiver)


class TestCompareAndSet:
    def test_each_transition_sends_a_signal_with_the_old_and_the_new_state(
        self, ctx, staff, lots, seen
    ):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        with write_txn() as session:
            assert transitions.claim(session, job.id, "host:1") is not None
        with write_txn() as session:
            assert transitions.cancel(session, job.id)
        assert seen == [
            ("submit", None, "queued"),
            ("claim", "queued", "running"),
            ("cancel", "running", "cancelled"),
        ]

    def test_a_write_under_a_lost_lease_changes_nothing(self, ctx, staff, lots):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        with write_txn() as session:
            row = transitions.claim(session, job.id, "host:1")
        assert row.attempts == 1
        with write_txn() as session:
            assert not transitions.progress(session, job.id, 2, 1, None)  # another attempt's
            assert not transitions.finish(session, job.id, 2, artifact_id=1)
            assert not transitions.fail(session, job.id, 2, Msg("disk_full"))
        db.session.refresh(job)
        assert job.status == "running" and job.progress_done == 0 and job.error is None

    def test_a_worker_of_a_cancelled_run_cannot_write_to_the_retried_run(self, ctx, staff, lots):
        """`attempts` starts over on a retry; the lease is on `claims`, which never does."""
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        with write_txn() as session:
            first = transitions.claim(session, job.id, "host:1")  # a worker that then stalls
        jobs.cancel(job)
        jobs.retry(job)
        with write_txn() as session:
            second = transitions.claim(session, job.id, "host:2")
        assert (first.attempts, second.attempts) == (1, 1) and second.claims == first.claims + 1
        with write_txn() as session:  # the stalled worker wakes up and reports
            assert not transitions.progress(session, job.id, first.claims, 1, None)
            assert not transitions.finish(session, job.id, first.claims, artifact_id=1)
        with write_txn() as session:
            assert transitions.progress(session, job.id, second.claims, 1, None)

    def test_a_final_job_cannot_be_claimed_or_cancelled(self, ctx, staff, lots):
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})
        with write_txn() as session:
            assert transitions.fail(session, job.id, None, Msg("lot_deleted", {"id": 1}))
        with write_txn() as session:
            assert transitions.claim(session, job.id, "host:1") is None
            assert not transitions.cancel(session, job.id)
        db.session.refresh(job)
        assert job.status == "failed" and job.error == Msg("lot_deleted", {"id": 1})

    def test_a_receiver_writes_in_the_transitions_own_transaction(self, ctx, staff, lots):
        """A hook that fails rolls the transition back with it: both commit or neither."""
        job, _ = jobs.submit(staff, KIND, {"lot_ids": [1]})

        def refuse(name: str, **kw: Any) -> None:
            raise RuntimeError("the hook failed")

        job_changed.connect(refuse)
        try:
            with pytest.raises(RuntimeError), write_txn() as session:
                transitions.cancel(session, job.id)
        finally:
            job_changed.disconnect(refuse)
        db.session.refresh(job)
        assert job.status == "queued"


class SubjectParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    sheet: int


class SubjectKind(DocumentKind):
    """A document with an identity, as a work order will be: one job for everyone."""

    name = "test_subject_sheet"
    title = "Sheet"
    unit = "page"
    Params = SubjectParams

    def prepare(self, params: Any, owner: Any) -> Prepared:
        return Prepared(params=params.model_dump(), data_version="v1", total=1)

    def subject(self, params: dict[str, Any]) -> str | None:
        return f"sheet:{params['sheet']}"

    def file_name(self, job: Job) -> str:
        return "sheet.pdf"

    def render(self, job: Job, ctx: Any, out: Path, part: Any) -> None:
        out.write_bytes(b"%PDF-1.4\n%%EOF\n")


@pytest.fixture
def subject_kind() -> Any:
    kind = documents.register(SubjectKind())
    yield kind
    documents._KINDS.pop(kind.name, None)


class TestSubjects:
    def test_two_people_asking_for_one_document_share_one_job(self, ctx, staff, subject_kind):
        other = add_user("other@example.com", "pw-other")
        first, created = jobs.submit(staff, subject_kind.name, {"sheet": 7})
        second, again = jobs.submit(other, subject_kind.name, {"sheet": 7})
        assert created and not again and second.id == first.id
        assert first.subject == "sheet:7"
        assert jobs.get_for(other, first.id).id == first.id  # the other may read it

    def test_a_reader_of_a_shared_document_may_not_cancel_or_restart_it(
        self, ctx, staff, subject_kind
    ):
        other = add_user("other@example.com", "pw-other")
        job, _ = jobs.submit(staff, subject_kind.name, {"sheet": 7})
        assert jobs.get_for(other, job.id).id == job.id
        with pytest.raises(jobs.Forbidden):
            jobs.get_for(other, job.id, control=True)
        assert jobs.get_for(staff, job.id, control=True).id == job.id

    def test_the_database_holds_one_live_job_per_subject_and_input(self, ctx, staff, subject_kind):
        other = add_user("other@example.com", "pw-other")
        first, _ = jobs.submit(staff, subject_kind.name, {"sheet": 7})
        twin = Job(
            owner_id=other.id,
            kind=first.kind,
            params=first.params,
            subject=first.subject,
            input_hash=first.input_hash,
            status="queued",
            unit="page",
        )
        db.session.add(twin)
        with pytest.raises(sa.exc.IntegrityError):
            db.session.commit()
        db.session.rollback()

    def test_a_system_job_has_no_owner_and_its_origin(self, ctx, subject_kind):
        subject_kind.roles = frozenset({"staff", "admin", "system"})
        job, created = jobs.submit(None, subject_kind.name, {"sheet": 8}, origin=Origin.SCHEDULE)
        assert created and job.owner_id is None and job.origin == "schedule"

    def test_a_kind_only_the_system_may_start_is_refused_to_staff(self, ctx, staff, subject_kind):
        subject_kind.roles = frozenset({"system"})
        with pytest.raises(jobs.Forbidden):
            jobs.submit(staff, subject_kind.name, {"sheet": 9})


class TestEnqueueInTheCallersTransaction:
    def test_a_rolled_back_transaction_leaves_no_job_and_sends_nothing(self, ctx, staff, lots):
        broker = ctx.extensions["pressroom.broker"]
        with pytest.raises(RuntimeError), write_txn() as session:
            jobs.enqueue(session, KIND, {"lot_ids": [1]}, owner=staff)
            raise RuntimeError("the caller's other write failed")
        assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 0
        assert broker.queues["pressroom"].qsize() == 0

    def test_the_message_goes_after_the_commit(self, ctx, staff, lots):
        broker = ctx.extensions["pressroom.broker"]
        with write_txn() as session:
            job, created = jobs.enqueue(session, KIND, {"lot_ids": [1]}, owner=staff)
            assert created and broker.queues["pressroom"].qsize() == 0
        assert broker.queues["pressroom"].qsize() == 1
