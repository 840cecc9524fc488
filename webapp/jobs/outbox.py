"""The transactional outbox: follow-up work (a mail, a webhook) written with the state change.

`add(session, …)` writes an item in the caller's transaction, keyed for idempotency: writing
the same key twice (a retried job, a re-run bulk action) is still one item, done once. After
the commit the item's id goes to the `dispatch_outbox` actor; the reaper re-drives items still
pending when due. A handler that fails is retried with exponential backoff; a handler must
tolerate being run again after a crash between its effect and our commit (a mail carries a
fixed Message-ID for that).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from webapp.db import after_commit, write_txn
from webapp.errors import PermanentError
from webapp.jobs import queues
from webapp.models import OutboxItem, utcnow

log = logging.getLogger(__name__)

PENDING, DONE, FAILED = "pending", "done", "failed"
# How long a dispatcher holds an item before another may take it (a crashed dispatcher) is
# OUTBOX_CLAIM_S: longer than the dispatch actor's time limit (10 min), so a slow one is never
# overtaken.

Handler = Callable[[dict[str, Any]], None]
_HANDLERS: dict[str, Handler] = {}


def handler(action: str) -> Callable[[Handler], Handler]:
    """Register the function that carries out `action` items."""

    def register(fn: Handler) -> Handler:
        _HANDLERS[action] = fn
        return fn

    return register


def add(
    session: Session, action: str, key: str, payload: dict[str, Any], *, job_id: str | None = None
) -> OutboxItem:
    """Write an item in the caller's transaction (or return the one with this key)."""
    existing = session.scalars(sa.select(OutboxItem).where(OutboxItem.key == key)).first()
    if existing is not None:
        return existing
    item = OutboxItem(
        key=key, action=action, payload=payload, job_id=job_id, status=PENDING, next_at=utcnow()
    )
    session.add(item)
    session.flush()
    item_id = item.id
    after_commit(session, lambda: queues.send(queues.DISPATCH, item_id))
    return item


def dispatch(item_id: int) -> str | None:
    """Carry out one item if it is pending and due; → its status afterwards (None: not ours)."""
    now = utcnow()
    with write_txn() as session:
        claimed = session.execute(
            sa.update(OutboxItem)
            .where(
                OutboxItem.id == item_id, OutboxItem.status == PENDING, OutboxItem.next_at <= now
            )
            .values(
                attempts=OutboxItem.attempts + 1,
                next_at=now + timedelta(seconds=current_app.config["OUTBOX_CLAIM_S"]),
            )
            .returning(OutboxItem.action, OutboxItem.payload, OutboxItem.attempts)
        ).first()
    if claimed is None:
        return None
    action, payload, attempts = claimed
    from webapp import metrics

    try:
        fn = _HANDLERS[action]
        fn(payload)
    except Exception as exc:
        status = _failed(item_id, attempts, exc)
        if action == "mail":
            metrics.mail_result("failed" if status == FAILED else "retried")
        return status
    if action == "mail":
        metrics.mail_result("sent")
    with write_txn() as session:
        session.execute(
            sa.update(OutboxItem)
            .where(*_held(item_id, attempts))
            .values(status=DONE, done_at=utcnow(), last_error=None)
        )
    log.info("outbox %s (%s) done on attempt %d", item_id, action, attempts)
    return DONE


def _held(item_id: int, attempts: int) -> list[Any]:
    """The item as this dispatcher claimed it: a later claim (a redrive) is not overwritten."""
    return [OutboxItem.id == item_id, OutboxItem.status == PENDING, OutboxItem.attempts == attempts]


def _failed(item_id: int, attempts: int, exc: Exception) -> str:
    config = current_app.config
    error = f"{exc.__class__.__name__}: {exc}"[:2000]
    # A refusal for good (a 5xx, an attachment gone) fails at once; the rest is tried again.
    final = isinstance(exc, PermanentError) or attempts >= config["MAIL_MAX_ATTEMPTS"]
    status = FAILED if final else PENDING
    delay = min(config["MAIL_RETRY_BACKOFF_S"] * 2 ** (attempts - 1), 3600)
    with write_txn() as session:
        held = session.execute(
            sa.update(OutboxItem)
            .where(*_held(item_id, attempts))
            .values(status=status, last_error=error, next_at=utcnow() + timedelta(seconds=delay))
            .returning(OutboxItem.id)
        ).first()
    if not held:
        return PENDING  # another dispatcher took it over meanwhile; its outcome stands
    if status == PENDING:
        log.warning(
            "outbox %s: attempt %d failed (%s); again in %.0f s", item_id, attempts, error, delay
        )
        queues.send(queues.DISPATCH, item_id, delay_s=delay)
    else:
        log.error("outbox %s: gave up after %d attempts (%s)", item_id, attempts, error)
    return status


def redrive(limit: int = 200) -> int:
    """Send pending items again that have been due for a while (their message was lost, or a
    dispatcher died): one just added or just re-sent still has its message in the queue."""
    from webapp.extensions import db

    overdue = utcnow() - timedelta(seconds=current_app.config["RESEND_AFTER_S"])
    due = db.session.scalars(
        sa.select(OutboxItem.id)
        .where(OutboxItem.status == PENDING, OutboxItem.next_at <= overdue)
        .order_by(OutboxItem.next_at)
        .limit(limit)
    ).all()
    db.session.commit()
    return sum(queues.send(queues.DISPATCH, item_id) for item_id in due)


def pending_count(session: Session) -> int:
    return session.scalar(sa.select(sa.func.count()).where(OutboxItem.status == PENDING)) or 0
