"""The transactional outbox: written with the change, idempotent by key, retried with backoff."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from webapp.db import write_txn
from webapp.extensions import db
from webapp.jobs import outbox
from webapp.models import OutboxItem, utcnow


@pytest.fixture
def calls() -> Any:
    done: list[dict[str, Any]] = []
    failures: list[Exception] = []

    @outbox.handler("test_note")
    def note(payload: dict[str, Any]) -> None:
        if failures:
            raise failures.pop(0)
        done.append(payload)

    yield done, failures
    outbox._HANDLERS.pop("test_note", None)


def dispatch_messages(app: Any) -> list[bytes]:
    return [
        m
        for m in app.extensions["pressroom.broker"].queues["pressroom"].queue
        if b"dispatch_outbox" in m
    ]


def item(key: str) -> OutboxItem:
    db.session.commit()
    found = db.session.scalars(sa.select(OutboxItem).where(OutboxItem.key == key)).one()
    return found


class TestAdd:
    def test_an_item_is_written_in_the_callers_transaction_and_sent_after_the_commit(self, ctx):
        with write_txn() as session:
            outbox.add(session, "test_note", "note:1", {"n": 1})
            assert dispatch_messages(ctx) == []
        assert len(dispatch_messages(ctx)) == 1
        assert item("note:1").status == "pending"

    def test_a_rolled_back_item_is_neither_kept_nor_sent(self, ctx):
        with pytest.raises(RuntimeError), write_txn() as session:
            outbox.add(session, "test_note", "note:1", {"n": 1})
            raise RuntimeError("the state change failed")
        assert db.session.scalar(sa.select(sa.func.count(OutboxItem.id))) == 0
        assert dispatch_messages(ctx) == []

    def test_the_same_key_twice_is_one_item(self, ctx):
        for _ in range(2):
            with write_txn() as session:
                outbox.add(session, "test_note", "note:1", {"n": 1})
        assert db.session.scalar(sa.select(sa.func.count(OutboxItem.id))) == 1


class TestDispatch:
    def test_a_pending_item_is_done_once(self, ctx, calls):
        done, _ = calls
        with write_txn() as session:
            item_id = outbox.add(session, "test_note", "note:1", {"n": 1}).id
        assert outbox.dispatch(item_id) == "done"
        assert outbox.dispatch(item_id) is None  # a duplicate message does nothing
        assert done == [{"n": 1}] and item("note:1").attempts == 1

    def test_a_failure_is_retried_later_with_a_growing_delay(self, make_app, calls):
        app = make_app(MAIL_RETRY_BACKOFF_S=10)
        with app.app_context():
            done, failures = calls
            failures.extend([ConnectionError("refused"), ConnectionError("refused")])
            with write_txn() as session:
                item_id = outbox.add(session, "test_note", "note:1", {"n": 1}).id
            before = utcnow()
            assert outbox.dispatch(item_id) == "pending"
            first = item("note:1")
            assert first.attempts == 1 and "refused" in first.last_error
            assert before + timedelta(seconds=9) < first.next_at < before + timedelta(seconds=12)
            assert outbox.dispatch(item_id) is None  # not due yet
            with write_txn() as session:  # time passes
                session.execute(sa.update(OutboxItem).values(next_at=utcnow()))
            assert outbox.dispatch(item_id) == "pending"
            assert item("note:1").next_at > utcnow() + timedelta(seconds=18)  # doubled
            with write_txn() as session:
                session.execute(sa.update(OutboxItem).values(next_at=utcnow()))
            assert outbox.dispatch(item_id) == "done" and done == [{"n": 1}]

    def test_an_item_gives_up_after_its_attempts(self, make_app, calls):
        app = make_app(MAIL_MAX_ATTEMPTS=2)
        with app.app_context():
            _, failures = calls
            failures.extend([OSError("down")] * 2)
            with write_txn() as session:
                item_id = outbox.add(session, "test_note", "note:1", {}).id
            outbox.dispatch(item_id)
            with write_txn() as session:
                session.execute(sa.update(OutboxItem).values(next_at=utcnow()))
            assert outbox.dispatch(item_id) == "failed"
            assert item("note:1").status == "failed"

    def test_the_reaper_redrives_only_items_overdue_for_longer_than_a_send_takes(self, ctx, calls):
        """A just-added item's message is still in the queue: sending it again floods the queue."""
        with write_txn() as session:
            outbox.add(session, "test_note", "lost", {}).next_at = utcnow() - timedelta(minutes=5)
            outbox.add(session, "test_note", "fresh", {})
            outbox.add(session, "test_note", "later", {}).next_at = utcnow() + timedelta(hours=1)
        ctx.extensions["pressroom.broker"].queues["pressroom"].queue.clear()
        assert outbox.redrive() == 1
        assert len(dispatch_messages(ctx)) == 1

    def test_a_dispatcher_that_was_overtaken_does_not_undo_the_others_result(self, ctx, calls):
        """A slow dispatcher's late failure must not put a done item back to pending."""
        done, failures = calls
        with write_txn() as session:
            item_id = outbox.add(session, "test_note", "note:1", {}).id
        slow_attempt = 1
        with write_txn() as session:  # the slow dispatcher claimed it (attempt 1) and hangs …
            session.execute(sa.update(OutboxItem).values(attempts=slow_attempt, next_at=utcnow()))
        assert outbox.dispatch(item_id) == "done"  # … another took it over and finished
        assert outbox._failed(item_id, slow_attempt, ConnectionError("timed out")) == "pending"
        assert item("note:1").status == "done" and done == [{}]
