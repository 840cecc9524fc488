"""The lab with real parts: a real SMTP server (aiosmtpd) that refuses, goes down, or sees the
worker die right after it accepted a mail; real Redis, Dramatiq workers, gunicorn and the
scheduler's reaper (tests/services.py). DESIGN §4a, §7: the report stays FINAL, the mail is
retried with backoff and reaches the veterinarian once (a resend after a crash carries the
same Message-ID); many views of a work order make one generation; a job nobody watches mails
its owner a link, a watched one does not."""

from __future__ import annotations

import email
import hashlib
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email.message import Message
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd import controller as aiosmtpd

from tests.conftest import wait_for
from tests.services import Stack
from webapp.db import write_txn
from webapp.extensions import db
from webapp.lab.demo import seed_lab
from webapp.models import Job, OutboxItem, Report, utcnow
from workers.waiting import free_port

pytestmark = pytest.mark.integration

SMTP_PORT = free_port()
STACK = {
    "processes": 2,
    "lots": 5,
    "env": {
        "SMTP_URL": f"smtp://127.0.0.1:{SMTP_PORT}",
        "MAIL_RETRY_BACKOFF_S": "0.3",
        "OUTBOX_CLAIM_S": "3",
        "RESEND_AFTER_S": "1",
        "READY_MAIL_IDLE_S": "1",
    },
}


class Mailbox:
    """aiosmtpd's handler: keeps what it accepts; can refuse the next few mails (451) or run
    something right after accepting one (before answering 250)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refuse = 0
        self.refuse_for: str | None = None
        self.after_accept: Any = None
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            # Refusals go to the mails of `refuse_for` only (when set): an owner's ready mail
            # (a slow run under load) must not take a refusal meant for the vet's report.
            wanted = self.refuse_for is None or self.refuse_for in envelope.rcpt_tos
            if self.refuse > 0 and wanted:
                self.refuse -= 1
                return "451 4.3.0 Mailbox busy, try again later"
            self.messages.append(email.message_from_bytes(envelope.content))
            hook, self.after_accept = self.after_accept, None
        if hook:
            hook()
        return "250 2.0.0 OK"

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


class SmtpServer:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.controller: Any = None

    def start(self) -> None:
        self.controller = aiosmtpd.Controller(self.mailbox, hostname="127.0.0.1", port=SMTP_PORT)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture(scope="module")
def smtp(stack: Stack) -> Any:
    server = SmtpServer(Mailbox())
    server.start()
    with stack.context():
        seed_lab(8)
    yield server
    server.stop()


@pytest.fixture
def mailbox(smtp: SmtpServer) -> Mailbox:
    if smtp.controller is None:
        smtp.start()
    smtp.mailbox.refuse, smtp.mailbox.after_accept, smtp.mailbox.refuse_for = 0, None, None
    return smtp.mailbox


def finalise(stack: Stack, report_id: int) -> dict[str, Any]:
    answer = stack.api(
        "POST",
        "/api/v1/jobs",
        json_body={"kind": "report_final", "params": {"report_id": report_id}},
    )
    assert answer.status == 202, (answer.status, answer.body)
    return answer.json()


def report_row(report_id: int) -> Report:
    db.session.commit()
    db.session.expire_all()
    report = db.session.get(Report, report_id)
    assert report is not None
    return report


def mail_item(report_id: int) -> OutboxItem | None:
    db.session.commit()
    return db.session.scalars(
        sa.select(OutboxItem).where(OutboxItem.key == f"report:{report_id}:v1")
    ).first()


def vet_email(report_id: int) -> str:
    return report_row(report_id).protocol.veterinarian.email


class TestReportMail:
    def test_refused_twice_then_accepted_arrives_once_with_the_pdf(self, stack, app_ctx, mailbox):
        mailbox.refuse, mailbox.refuse_for = 2, vet_email(1)
        job = finalise(stack, 1)
        stack.wait_status(job["id"], "done")
        assert report_row(1).status == "final"  # final before the mail got through

        item = wait_for(
            lambda: (i := mail_item(1)) is not None and i.status == "done" and i,
            30,
            message="the mail to be sent",
        )
        received = mailbox.to(vet_email(1))
        assert len(received) == 1 and item.attempts == 3
        message = received[0]
        assert message["Message-ID"].startswith("<report-1-v1@")
        pdfs = [p for p in message.walk() if p.get_content_type() == "application/pdf"]
        assert len(pdfs) == 1 and pdfs[0].get_payload(decode=True).startswith(b"%PDF-")

        assert (
            hashlib.sha256(pdfs[0].get_payload(decode=True)).hexdigest() == report_row(1).pdf_sha256
        )

    def test_a_server_down_for_a_while_gets_the_mail_when_it_is_back(
        self, stack, app_ctx, mailbox, smtp
    ):
        smtp.stop()
        job = finalise(stack, 2)
        stack.wait_status(job["id"], "done")
        wait_for(
            lambda: (i := mail_item(2)) is not None and i.attempts >= 2 and i.last_error,
            30,
            message="two failed attempts while the server is down",
        )
        assert report_row(2).status == "final" and mail_item(2).status == "pending"
        smtp.start()
        wait_for(
            lambda: mail_item(2).status == "done", 60, message="the mail after the server is back"
        )
        assert len(smtp.mailbox.to(vet_email(2))) == 1

    def test_a_worker_killed_after_the_server_accepted_resends_with_the_same_message_id(
        self, stack, app_ctx, mailbox
    ):
        def kill_workers() -> None:  # the server has the mail; our commit never happens
            for pid in stack.worker_children():
                os.kill(pid, signal.SIGKILL)

        mailbox.after_accept = kill_workers
        job = finalise(stack, 3)
        wait_for(lambda: mailbox.to(vet_email(3)), 30, message="the first delivery")
        stack.worker.wait_exit(60)
        stack.worker.kill_group()
        stack.start_workers()
        stack.wait_status(job["id"], "done")
        item = wait_for(
            lambda: (i := mail_item(3)) is not None and i.status == "done" and i,
            60,
            message="the mail re-sent after the crash",
        )
        deliveries = mailbox.to(vet_email(3))
        assert len(deliveries) == 2, [m["Message-ID"] for m in deliveries]
        assert deliveries[0]["Message-ID"] == deliveries[1]["Message-ID"]
        assert item.attempts == 2 and report_row(3).status == "final"


class TestWorkOrders:
    def test_twenty_concurrent_views_make_one_generation(self, stack, app_ctx):
        from webapp.models import WorkOrder, WorkOrderItem

        with write_txn() as session:
            report = db.session.get(Report, 4)
            order = WorkOrder(
                veterinarian_id=report.protocol.veterinarian_id,
                notes="Vista concurrente",
                items=[WorkOrderItem(protocol_id=4, service="Citología", price_cents=3850)],
            )
            session.add(order)
            session.flush()
            order_id = order.id
        path = f"/api/v1/work-orders/{order_id}/pdf"
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda _: stack.api("GET", path), range(20)))
        assert {a.status for a in answers} <= {200, 202}
        job_ids = {a.json()["id"] for a in answers if a.status == 202}
        db.session.commit()
        made = db.session.scalars(
            sa.select(Job).where(Job.subject == f"work_order:{order_id}")
        ).all()
        assert len(made) == 1 and job_ids <= {made[0].id}
        stack.wait_status(made[0].id, "done")
        served = stack.api("GET", path)
        assert served.status == 200 and served.header("Pressroom-Document-Status") == "current"

        # Concurrent identical edits: one new version, one more generation.
        body = {"notes": "Editado a la vez"}
        with ThreadPoolExecutor(10) as pool:
            edits = list(
                pool.map(
                    lambda _: stack.api("PATCH", f"/api/v1/work-orders/{order_id}", json_body=body),
                    range(10),
                )
            )
        assert {e.status for e in edits} == {200} and {e.json()["version"] for e in edits} == {2}
        db.session.commit()
        assert (
            db.session.scalar(
                sa.select(sa.func.count(Job.id)).where(Job.subject == f"work_order:{order_id}")
            )
            == 2
        )


def paced_via_api(stack: Stack, gate: str) -> Job:
    """A paced job started through the web server (whose READY_MAIL_IDLE_S is the stack's)."""
    stack.gates.append(gate)
    params = {"steps": 2, "gate": gate}
    answer = stack.api("POST", "/api/v1/jobs", json_body={"kind": "test_paced", "params": params})
    assert answer.status == 202, answer.body
    return stack.job(answer.json()["id"])


class TestReadyMail:
    def test_a_job_nobody_watches_mails_its_owner_and_a_watched_one_does_not(
        self, stack, app_ctx, mailbox
    ):
        redis = stack.redis_client()
        unwatched, watched = (paced_via_api(stack, name) for name in ("ready-1", "ready-2"))
        stack.wait_steps(unwatched.id, 0)
        stack.wait_steps(watched.id, 0)

        stop = threading.Event()
        watched_path = f"/api/v1/jobs/{watched.id}"

        def poll() -> None:  # the page of `watched` stays open
            while not stop.is_set():
                stack.api("GET", watched_path)
                stop.wait(0.2)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            # Left: no poll's mark, and older than READY_MAIL_IDLE_S (1 s here).
            wait_for(
                lambda: (
                    not redis.exists(f"pressroom:seen:{unwatched.id}")
                    and utcnow() - unwatched.created_at > timedelta(seconds=1)
                ),
                10,
                message="the unwatched job's page to count as left",
            )
            assert redis.exists(f"pressroom:seen:{watched.id}")
            stack.allow(unwatched, 2)
            stack.allow(watched, 2)
            stack.wait_status(unwatched.id, "done")
            stack.wait_status(watched.id, "done")
        finally:
            stop.set()
            poller.join(5)
        staff = stack.staff().email
        ready = wait_for(
            lambda: [m for m in mailbox.to(staff) if unwatched.id in m.get_payload()],
            30,
            message="the ready mail",
        )
        assert len(ready) == 1 and ready[0]["Subject"].startswith("Ready")
        db.session.commit()
        keys = set(db.session.scalars(sa.select(OutboxItem.key)))
        assert f"ready:{unwatched.id}" in keys and f"ready:{watched.id}" not in keys
