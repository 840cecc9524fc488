"""The lab on the engine: reception labels, report finalisation with its one mail, work orders
made once per version, the public page; through the pages and the API (StubBroker worker)."""

from __future__ import annotations

import email
import re
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
import sqlalchemy as sa
import zxingcpp
from flask import Flask

from tests.conftest import add_user
from webapp.auth import create_token
from webapp.db import write_txn
from webapp.extensions import db
from webapp.lab.demo import seed_lab
from webapp.lab.records import queue_labels
from webapp.models import (
    Artifact,
    Job,
    OutboxItem,
    Protocol,
    Report,
    User,
    Veterinarian,
    WorkOrder,
)


@pytest.fixture
def lab(app: Flask) -> Flask:
    """Staff and admin, six seeded protocols (labels queued), and API tokens."""
    with app.app_context():
        add_user("staff@example.com", "pw-staff")
        add_user("admin@example.com", "pw-admin", role="admin")
        ids = seed_lab(6)
        with write_txn() as session:
            queue_labels(session, ids)
        app.config["TOKENS"] = {
            "staff": create_token(
                db.session.scalars(sa.select(User).filter_by(role="staff")).one()
            ),
            "admin": create_token(
                db.session.scalars(sa.select(User).filter_by(role="admin")).one()
            ),
        }
    return app


def api(client: Any, app: Flask, method: str, path: str, who: str = "staff", **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {app.config['TOKENS'][who]}"}
    return client.open(path, method=method, headers=headers, **kw)


def pdf_text(data: bytes) -> str:
    doc = pdfium.PdfDocument(data)
    return "\n".join(page.get_textpage().get_text_range() for page in doc)


class TestReception:
    def test_seeded_protocols_have_their_labels_stored_and_the_qr_opens_the_public_page(
        self, lab, client, stub_worker
    ):
        stub_worker()
        with lab.app_context():
            protocol = db.session.get(Protocol, 1)
            assert protocol.label_artifact_id is not None
            external = protocol.external_id
            number = protocol.number
        response = api(client, lab, "GET", "/lab/protocols/1/label")  # a page: needs a session
        assert response.status_code in (302, 401)
        client.post("/login", data={"email": "staff@example.com", "password": "pw-staff"})
        response = client.get("/lab/protocols/1/label")
        assert response.status_code == 200 and response.mimetype == "application/pdf"
        page = pdfium.PdfDocument(response.data)[0]
        width, height = page.get_size()
        assert (round(width / 72 * 25.4), round(height / 72 * 25.4)) == (39, 20)
        image = page.render(scale=203 / 72).to_pil()
        codes = [code.text for code in zxingcpp.read_barcodes(image)]
        assert codes == [f"http://localhost:5000/protocols/public/{external}/"]
        assert number in page.get_textpage().get_text_range()
        client.post("/logout")
        public = client.get(f"/protocols/public/{external}/")
        assert public.status_code == 200
        assert number.encode() in public.data
        with lab.app_context():
            animal = db.session.get(Protocol, 1).animal_id
            vet = db.session.get(Protocol, 1).veterinarian
        assert animal.encode() not in public.data and vet.email.encode() not in public.data
        assert client.get("/protocols/public/" + "x" * 32 + "/").status_code == 404

    def test_receiving_numbers_the_protocol_and_queues_its_label_in_one_go(
        self, lab, client, stub_worker
    ):
        with lab.app_context():
            vet_id = db.session.scalars(sa.select(Veterinarian.id)).first()
        client.post("/login", data={"email": "staff@example.com", "password": "pw-staff"})
        response = client.post(
            "/lab/reception/samples",
            data={
                "veterinarian_id": vet_id,
                "animal_id": "Pipo",
                "species": "Hurón",
                "analysis_type": "cytology",
            },
        )
        assert response.status_code == 303
        protocol_id = int(response.headers["Location"].rsplit("/", 1)[1])
        with lab.app_context():
            protocol = db.session.get(Protocol, protocol_id)
            assert re.fullmatch(r"CT \d\d/\d{4}", protocol.number)
            job = db.session.scalars(
                sa.select(Job).where(Job.subject == f"protocol:{protocol_id}")
            ).one()
            assert job.status == "queued"
        stub_worker()
        response = client.get(f"/lab/protocols/{protocol_id}/label")
        assert response.status_code == 200 and response.headers["ETag"]

    def test_receiving_twice_is_a_conflict_and_unknown_is_404(self, lab, client):
        with lab.app_context():
            with write_txn() as session:
                session.add(
                    Protocol(
                        veterinarian_id=1,
                        animal_id="Kira",
                        species="Felino",
                        analysis_type="histopathology",
                    )
                )
            new_id = db.session.scalar(sa.select(sa.func.max(Protocol.id)))
        first = api(client, lab, "POST", f"/api/v1/protocols/{new_id}/receive")
        assert first.status_code == 202
        assert first.json["protocol"]["number"].startswith("HP ")
        assert first.json["job"]["kind"] == "reception_label"
        again = api(client, lab, "POST", f"/api/v1/protocols/{new_id}/receive")
        assert again.status_code == 409 and again.json["error"]["code"] == "conflict"
        assert api(client, lab, "POST", "/api/v1/protocols/99999/receive").status_code == 404


class TestReportFinal:
    def test_finalise_answers_at_once_then_the_report_is_final_and_mailed_once(
        self, lab, client, stub_worker
    ):
        first = api(
            client,
            lab,
            "POST",
            "/api/v1/jobs",
            json={"kind": "report_final", "params": {"report_id": 2}},
        )
        assert first.status_code == 202, first.json
        twin = api(
            client,
            lab,
            "POST",
            "/api/v1/jobs",
            json={"kind": "report_final", "params": {"report_id": 2}},
        )
        assert twin.status_code == 200 and twin.json["id"] == first.json["id"]
        stub_worker()
        with lab.app_context():
            report = db.session.get(Report, 2)
            assert report.status == "final" and report.pdf_sha256
            artifact = db.session.get(Artifact, report.artifact_id)
            assert artifact.sha256 == report.pdf_sha256 and artifact.pinned
            items = db.session.scalars(sa.select(OutboxItem)).all()
            mails = [i for i in items if i.action == "mail"]
            assert [m.status for m in mails] == ["done"]
            outbox = Path(lab.config["OUTBOX_DIR"])
            files = list(outbox.glob("*.eml"))
            vet_email = report.protocol.veterinarian.email
        assert len(files) == 1
        message = email.message_from_bytes(files[0].read_bytes())
        assert message["To"] == vet_email
        assert message["Message-ID"].startswith("<report-2-v1@")
        attachments = [p for p in message.walk() if p.get_content_disposition() == "attachment"]
        assert len(attachments) == 1
        assert "HP" in pdf_text(attachments[0].get_payload(decode=True)) or "CT" in pdf_text(
            attachments[0].get_payload(decode=True)
        )
        again = api(
            client,
            lab,
            "POST",
            "/api/v1/jobs",
            json={"kind": "report_final", "params": {"report_id": 2}},
        )
        assert again.status_code == 409 and "final" in again.json["error"]["message"]


class TestWorkOrders:
    def test_a_work_order_is_served_stored_and_an_edit_regenerates_it_once(
        self, lab, client, stub_worker
    ):
        with lab.app_context(), write_txn() as session:
            queue = __import__("webapp.jobs", fromlist=["enqueue"]).enqueue
            queue(session, "work_order", {"work_order_id": 1})
        waiting = api(client, lab, "GET", "/api/v1/work-orders/1/pdf")
        assert waiting.status_code == 202 and waiting.headers["Retry-After"] == "1"
        stub_worker()
        served = api(client, lab, "GET", "/api/v1/work-orders/1/pdf")
        assert served.status_code == 200
        assert served.headers["Pressroom-Document-Status"] == "current"
        old_etag = served.headers["ETag"]
        patched = api(
            client, lab, "PATCH", "/api/v1/work-orders/1", json={"notes": "Urgente: llamar"}
        )
        assert patched.status_code == 200 and patched.json["version"] == 2
        during = api(client, lab, "GET", "/api/v1/work-orders/1/pdf")
        assert during.headers["Pressroom-Document-Status"] == "updating"
        assert during.headers["ETag"] == old_etag
        stub_worker()
        after = api(client, lab, "GET", "/api/v1/work-orders/1/pdf")
        assert after.headers["Pressroom-Document-Status"] == "current"
        assert after.headers["ETag"] != old_etag
        assert "Urgente: llamar" in pdf_text(after.data)
        with lab.app_context():
            jobs = db.session.scalars(sa.select(Job).where(Job.kind == "work_order")).all()
            assert len(jobs) == 2
            assert db.session.get(WorkOrder, 1).pdf_version == 2
