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
from webapp.lab.service import queue_documents
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
            queue_documents(session, ids)
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
            jobs = db.session.scalars(sa.select(Job).where(Job.subject == "work_order:1")).all()
            assert len(jobs) == 2
            assert db.session.get(WorkOrder, 1).pdf_version == 2


class TestBadInput:
    """Unknown ids, a FINAL report, foreign protocols, broken bodies: clear 4xx, nothing queued."""

    def jobs_count(self, app: Flask) -> int:
        with app.app_context():
            return db.session.scalar(sa.select(sa.func.count(Job.id))) or 0

    @pytest.mark.parametrize(
        ("params", "status", "field"),
        [
            ({"report_id": 999}, 422, "report_id"),
            ({"report_id": "1"}, 422, "report_id"),
            ({"report_id": 2**70}, 422, "report_id"),
            ({}, 422, "report_id"),
            ({"report_id": 1, "x": 1}, 422, "x"),
        ],
    )
    def test_finalise_refuses_bad_params(self, lab, client, params, status, field):
        before = self.jobs_count(lab)
        answer = api(
            client, lab, "POST", "/api/v1/jobs", json={"kind": "report_final", "params": params}
        )
        assert answer.status_code == status and field in answer.json["error"]["fields"]
        assert self.jobs_count(lab) == before

    def test_work_order_api_refuses_unknown_ids_foreign_protocols_and_bad_bodies(self, lab, client):
        before = self.jobs_count(lab)
        assert api(client, lab, "GET", "/api/v1/work-orders/999/pdf").status_code == 404
        assert (
            api(client, lab, "PATCH", "/api/v1/work-orders/999", json={"notes": "x"}).status_code
            == 404
        )
        assert api(client, lab, "GET", "/api/v1/work-orders/abc").status_code == 404
        bad = api(client, lab, "PATCH", "/api/v1/work-orders/1", data="not json")
        assert bad.status_code == 400 and bad.json["error"]["code"] == "bad_request"
        extra = api(client, lab, "PATCH", "/api/v1/work-orders/1", json={"version": 9})
        assert extra.status_code == 422 and "version" in extra.json["error"]["fields"]
        long = api(client, lab, "PATCH", "/api/v1/work-orders/1", json={"notes": "x" * 5001})
        assert long.status_code == 422 and "notes" in long.json["error"]["fields"]
        with lab.app_context():
            order = db.session.get(WorkOrder, 1)
            foreign = db.session.scalars(
                sa.select(Protocol.id).where(Protocol.veterinarian_id != order.veterinarian_id)
            ).first()
            version = order.version
        other = api(client, lab, "PATCH", "/api/v1/work-orders/1", json={"protocol_ids": [foreign]})
        assert other.status_code == 422 and "protocol_ids" in other.json["error"]["fields"]
        with lab.app_context():
            assert db.session.get(WorkOrder, 1).version == version
        assert self.jobs_count(lab) == before

    def test_the_pages_answer_404_for_unknown_records_and_the_forms_say_what_is_wrong(
        self, lab, client
    ):
        client.post("/login", data={"email": "staff@example.com", "password": "pw-staff"})
        for path in (
            "/lab/protocols/999",
            "/lab/reports/999",
            "/lab/work-orders/999",
            "/lab/reports/99999999999999999999999",
        ):
            assert client.get(path).status_code == 404, path
        sent = client.post(
            "/lab/reception/samples",
            data={
                "veterinarian_id": "999",
                "animal_id": "",
                "species": "Felino",
                "analysis_type": "x",
            },
        )
        assert sent.status_code == 303
        page = client.get("/lab/reception").get_data(as_text=True)
        assert 'id="err-animal_id"' in page and 'id="err-analysis_type"' in page
        assert 'aria-invalid="true"' in page and 'value="Felino"' in page
        with lab.app_context():
            assert db.session.scalar(sa.select(sa.func.count(Protocol.id))) == 6

    def test_a_qr_code_too_fine_for_the_printer_is_refused_with_the_reason(self, make_app, client):
        app = make_app(SITE_URL="https://" + "laboratorio-" * 12 + "example.com")
        with app.app_context():
            add_user("staff@example.com", "pw-staff")
            seed_lab(1)
            user = db.session.scalars(sa.select(User)).one()
            from webapp import jobs

            with pytest.raises(jobs.InvalidParams) as refused:
                jobs.submit(user, "reception_label", {"protocol_id": 1})
            assert refused.value.code == "qr_too_dense"
            assert "203 dpi" in refused.value.msg.english()
            app.config["LABEL_PRINTER_DPI"] = 300
            job, created = jobs.submit(user, "reception_label", {"protocol_id": 1})
            assert created


class TestPublicPage:
    def test_it_needs_no_login_shows_three_facts_and_nothing_else(self, lab, client):
        with lab.app_context():
            protocol = db.session.get(Protocol, 3)
            report = db.session.get(Report, 3)
            secret = [
                protocol.animal_id,
                protocol.species,
                protocol.veterinarian.name,
                protocol.veterinarian.email,
                report.diagnosis[:30],
            ]
            external, number = protocol.external_id, protocol.number
        answer = client.get(f"/protocols/public/{external}/")
        assert answer.status_code == 200
        assert answer.headers["Cache-Control"] == "no-store"
        body = answer.get_data(as_text=True)
        assert number in body
        assert not [s for s in secret if s and s in body]
        assert "Log out" not in body and "/lab/" not in body
        assert client.get(f"/protocols/public/{external[:-1]}x/").status_code == 404
        assert client.get("/protocols/public/short/").status_code == 404


class TestReadyMailSetting:
    def test_a_long_unwatched_job_mails_its_owner_unless_they_turned_it_off(self, make_app):
        import dramatiq

        import workers.actors  # noqa: F401
        from tests.conftest import join_all
        from webapp import jobs
        from workers.broker import setup

        app = make_app(READY_MAIL_IDLE_S=0.0)  # every job is "long" and its page "left"
        with app.app_context():
            keen = add_user("keen@example.com", "pw")
            quiet = add_user("quiet@example.com", "pw")
            with write_txn() as session:
                session.execute(sa.update(User).where(User.id == quiet.id).values(ready_mail=False))
            ids = seed_lab(2)
            a, _ = jobs.submit(
                db.session.get(User, keen.id),
                "reception_labels_day",
                {"date": db.session.get(Protocol, ids[0]).received_on.isoformat()},
            )
            b, _ = jobs.submit(db.session.get(User, quiet.id), "work_order", {"work_order_id": 1})
            a_id, b_id = a.id, b.id
        broker = setup(app)
        worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
        worker.start()
        try:
            join_all(broker, worker)
        finally:
            worker.stop()
        with app.app_context():
            keys = set(db.session.scalars(sa.select(OutboxItem.key)))
            assert f"ready:{a_id}" in keys and f"ready:{b_id}" not in keys
            eml = list(Path(app.config["OUTBOX_DIR"]).glob("*.eml"))
            message = email.message_from_bytes(eml[0].read_bytes())
            assert message["To"] == "keen@example.com" and f"/jobs/{a_id}" in message.get_payload()


class TestDayRoll:
    def test_a_days_labels_are_one_roll_in_number_order(self, lab, client, stub_worker):
        with lab.app_context():
            day = db.session.get(Protocol, 1).received_on
            numbers = sorted(
                db.session.scalars(sa.select(Protocol.number).where(Protocol.received_on == day))
            )
        answer = api(
            client,
            lab,
            "POST",
            "/api/v1/jobs",
            json={"kind": "reception_labels_day", "params": {"date": day.isoformat()}},
        )
        assert answer.status_code == 202 and answer.json["progress"]["total"] == len(numbers)
        stub_worker()
        pdf = api(client, lab, "GET", f"/api/v1/jobs/{answer.json['id']}/file")
        doc = pdfium.PdfDocument(pdf.data)
        assert [p.get_textpage().get_text_range().splitlines()[0] for p in doc] == numbers
        empty = api(
            client,
            lab,
            "POST",
            "/api/v1/jobs",
            json={"kind": "reception_labels_day", "params": {"date": "1999-01-01"}},
        )
        assert empty.status_code == 422 and "date" in empty.json["error"]["fields"]
        bad = api(
            client,
            lab,
            "POST",
            "/api/v1/jobs",
            json={"kind": "reception_labels_day", "params": {"date": "2026-13-01"}},
        )
        assert bad.status_code == 422


class TestCli:
    def test_seed_demo_protocols_and_lab_receive(self, app):
        from tests.unit.test_cli import run

        result = run(app, "seed-demo", "--protocols", "5")
        assert result.exit_code == 0, result.output
        with app.app_context():
            assert db.session.scalars(sa.select(Protocol.id).order_by(Protocol.id)).all() == [
                1,
                2,
                3,
                4,
                5,
            ]
            assert (
                db.session.scalar(sa.select(sa.func.count()).select_from(sa.text("potting_lots")))
                == 0
            )
            labels = db.session.scalar(
                sa.select(sa.func.count(Job.id)).where(Job.kind == "reception_label")
            )
            assert labels == 5
            with write_txn() as session:
                session.add(
                    Protocol(
                        veterinarian_id=1,
                        animal_id="Bram",
                        species="Konijn",
                        analysis_type="cytology",
                    )
                )
        received = run(app, "lab", "receive", "6")
        assert received.exit_code == 0 and re.search(r"as CT \d\d/\d{4}", received.output), (
            received.output
        )
        again = run(app, "lab", "receive", "6")
        assert again.exit_code != 0 and "received already" in again.output


class TestRegenerate:
    def test_stale_documents_are_made_again_unchanged_ones_skipped_and_the_report_lists_them(
        self, lab, client, stub_worker
    ):
        stub_worker()  # the seeded labels
        with lab.app_context(), write_txn() as session:
            for order_id in db.session.scalars(sa.select(WorkOrder.id)).all():
                __import__("webapp.jobs", fromlist=["x"]).enqueue(
                    session, "work_order", {"work_order_id": order_id}
                )
        stub_worker()
        patched = api(client, lab, "PATCH", "/api/v1/work-orders/1", json={"notes": "v2"})
        assert patched.status_code == 200
        with lab.app_context():  # the edit's job is lost (cancelled): work order 1 is stale
            from webapp import jobs as engine

            engine.cancel(db.session.get(Job, patched.json["job"]["id"]))
        staff = api(
            client,
            lab,
            "POST",
            "/api/v1/jobs",
            json={"kind": "regenerate", "params": {"kind": "work_order"}},
        )
        assert staff.status_code == 403
        bad = api(
            client,
            lab,
            "POST",
            "/api/v1/jobs",
            who="admin",
            json={"kind": "regenerate", "params": {"kind": "potting_lot_labels"}},
        )
        assert bad.status_code == 422 and "kind" in bad.json["error"]["fields"]
        stale = api(
            client,
            lab,
            "POST",
            "/api/v1/jobs",
            who="admin",
            json={"kind": "regenerate", "params": {"kind": "work_order", "scope": "stale"}},
        )
        assert stale.status_code == 202 and stale.json["progress"]["total"] == 1
        every = api(
            client,
            lab,
            "POST",
            "/api/v1/jobs",
            who="admin",
            json={"kind": "regenerate", "params": {"kind": "reception_label", "scope": "all"}},
        )
        assert every.status_code == 202 and every.json["progress"]["total"] == 6
        stub_worker()
        forced = api(
            client,
            lab,
            "POST",
            "/api/v1/jobs",
            who="admin",
            json={
                "kind": "regenerate",
                "params": {"kind": "work_order", "scope": "all", "force": True},
            },
        )
        stub_worker()
        one = api(client, lab, "GET", f"/api/v1/jobs/{stale.json['id']}", who="admin").json
        assert one["status"] == "done" and one["items"] == {"done": 1, "failed": 0, "skipped": 0}
        labels = api(client, lab, "GET", f"/api/v1/jobs/{every.json['id']}", who="admin").json
        assert labels["status"] == "done" and labels["items"] == {
            "done": 0,
            "failed": 0,
            "skipped": 6,
        }
        all_orders = api(client, lab, "GET", f"/api/v1/jobs/{forced.json['id']}", who="admin").json
        with lab.app_context():
            orders = db.session.scalar(sa.select(sa.func.count(WorkOrder.id)))
            assert db.session.get(WorkOrder, 1).pdf_version == 2
        assert all_orders["items"] == {"done": orders, "failed": 0, "skipped": 0}
        report = api(client, lab, "GET", f"/api/v1/jobs/{forced.json['id']}/file", who="admin")
        lines = report.data.decode("utf-8-sig").splitlines()
        assert lines[0] == "document,status,file,error,job" and len(lines) == orders + 2
        assert all(",done," in line for line in lines[1:-1])

    def test_an_empty_scope_ends_done_with_zero_items(self, lab, client, stub_worker):
        answer = api(
            client,
            lab,
            "POST",
            "/api/v1/jobs",
            who="admin",
            json={
                "kind": "regenerate",
                "params": {"kind": "work_order", "scope": {"changed_since": "2999-01-01"}},
            },
        )
        assert answer.status_code == 202 and answer.json["progress"]["total"] == 0
        stub_worker()
        done = api(client, lab, "GET", f"/api/v1/jobs/{answer.json['id']}", who="admin").json
        assert done["status"] == "done" and done["items"] == {"done": 0, "failed": 0, "skipped": 0}


class TestBulk:
    def test_a_bulk_update_reports_each_protocol_and_a_rerun_skips_what_is_so(
        self, lab, client, stub_worker
    ):
        body = {
            "kind": "bulk_protocol_update",
            "params": {
                "protocol_ids": [1, 2, 3, 999],
                "set": {"status": "processing", "assigned_to": "Dra. Ríos"},
            },
        }
        assert api(client, lab, "POST", "/api/v1/jobs", json=body).status_code == 403  # staff
        first = api(client, lab, "POST", "/api/v1/jobs", who="admin", json=body)
        assert first.status_code == 202
        stub_worker()
        done = api(client, lab, "GET", f"/api/v1/jobs/{first.json['id']}", who="admin").json
        assert done["status"] == "done" and done["items"] == {"done": 3, "failed": 1, "skipped": 0}
        with lab.app_context():
            rows = db.session.execute(
                sa.select(Protocol.status, Protocol.assigned_to).where(Protocol.id.in_([1, 2, 3]))
            ).all()
            assert set(rows) == {("processing", "Dra. Ríos")}
            from webapp.models import AuditEntry

            audit = db.session.scalars(sa.select(AuditEntry)).all()
            assert [(a.action, a.user.email) for a in audit] == [
                ("start.bulk_protocol_update", "admin@example.com")
            ]
        again = api(client, lab, "POST", "/api/v1/jobs", who="admin", json=body)
        stub_worker()
        rerun = api(client, lab, "GET", f"/api/v1/jobs/{again.json['id']}", who="admin").json
        assert rerun["items"] == {"done": 0, "failed": 1, "skipped": 3}
        empty = api(
            client,
            lab,
            "POST",
            "/api/v1/jobs",
            who="admin",
            json={"kind": "bulk_protocol_update", "params": {"protocol_ids": [1], "set": {}}},
        )
        assert empty.status_code == 422 and "set" in empty.json["error"]["fields"]

    def test_bulk_mail_goes_once_per_protocol_and_template(self, lab, client, stub_worker):
        body = {
            "kind": "bulk_mail",
            "params": {"protocol_ids": [1, 2], "template": "sample_received"},
        }
        first = api(client, lab, "POST", "/api/v1/jobs", who="admin", json=body)
        stub_worker()
        second = api(
            client,
            lab,
            "POST",
            "/api/v1/jobs",
            who="admin",
            json={
                "kind": "bulk_mail",
                "params": {"protocol_ids": [2, 3, 1], "template": "sample_received"},
            },
        )
        stub_worker()
        a = api(client, lab, "GET", f"/api/v1/jobs/{first.json['id']}", who="admin").json
        b = api(client, lab, "GET", f"/api/v1/jobs/{second.json['id']}", who="admin").json
        assert a["items"] == {"done": 2, "failed": 0, "skipped": 0}
        assert b["items"] == {"done": 1, "failed": 0, "skipped": 2}
        with lab.app_context():
            keys = db.session.scalars(
                sa.select(OutboxItem.key).where(OutboxItem.key.like("bulk_mail:%"))
            ).all()
            assert sorted(keys) == [f"bulk_mail:sample_received:{i}" for i in (1, 2, 3)]
            eml = list(Path(lab.config["OUTBOX_DIR"]).glob("bulk-*.eml"))
            assert len(eml) == 3
        bad = api(
            client,
            lab,
            "POST",
            "/api/v1/jobs",
            who="admin",
            json={"kind": "bulk_mail", "params": {"protocol_ids": [1], "template": "x"}},
        )
        assert bad.status_code == 422 and "template" in bad.json["error"]["fields"]


class TestReviewedEdges:
    def test_line_breaks_in_one_line_fields_and_giant_ids_are_4xx_not_5xx(self, lab, client):
        client.post("/login", data={"email": "staff@example.com", "password": "pw-staff"})
        sent = client.post(
            "/lab/reception/samples",
            data={
                "veterinarian_id": "1",
                "animal_id": "Pipo\r\nBcc: x@example.com",
                "species": "Felino",
                "analysis_type": "cytology",
            },
        )
        assert sent.status_code == 303 and 'id="err-animal_id"' in client.get(
            "/lab/reception"
        ).get_data(as_text=True)
        big = "9" * 25
        assert client.get(f"/lab/work-orders/new?veterinarian_id={big}").status_code == 200
        assert (
            client.post(
                "/lab/work-orders", data={"veterinarian_id": "1", "protocol_id": [big, "9" * 5000]}
            ).status_code
            == 303
        )
        assert (
            client.post(
                "/lab/reception/samples",
                data={
                    "veterinarian_id": "9" * 5000,
                    "animal_id": "a",
                    "species": "b",
                    "analysis_type": "cytology",
                },
            ).status_code
            == 303
        )
        for method, path, body in (
            ("POST", "/api/v1/work-orders", {"veterinarian_id": 1, "protocol_ids": [10**20]}),
            ("PATCH", "/api/v1/work-orders/1", {"protocol_ids": [10**20]}),
        ):
            answer = api(client, lab, method, path, json=body)
            assert answer.status_code == 422, (path, answer.status_code)

    def test_an_edit_supersedes_the_older_generation_and_a_failed_one_is_not_redone_on_each_view(
        self, lab, client, stub_worker
    ):
        first = api(client, lab, "GET", "/api/v1/work-orders/1/pdf")  # none yet: one is started
        assert first.status_code == 202
        edit = api(client, lab, "PATCH", "/api/v1/work-orders/1", json={"notes": "Otra nota"})
        with lab.app_context():
            old = db.session.get(Job, first.json["id"])
            assert old.status == "cancelled"  # one generation at a time
            with write_txn() as session:  # its generation fails for good
                from webapp.jobs import transitions
                from webapp.messages import Msg

                transitions.fail(
                    session, edit.json["job"]["id"], None, Msg("work_order_gone", {"id": 1})
                )
        failed = api(client, lab, "GET", "/api/v1/work-orders/1/pdf")
        assert failed.status_code == 409 and failed.json["error"]["job"]["status"] == "failed"
        again = api(client, lab, "GET", "/api/v1/work-orders/1/pdf")
        assert again.status_code == 409
        with lab.app_context():
            assert (
                db.session.scalar(
                    sa.select(sa.func.count(Job.id)).where(Job.subject == "work_order:1")
                )
                == 2
            )

    def test_a_replaced_pdf_is_unpinned_and_the_current_one_kept(self, lab, client, stub_worker):
        api(client, lab, "GET", "/api/v1/work-orders/1/pdf")
        stub_worker()
        with lab.app_context():
            first = db.session.get(WorkOrder, 1).pdf_artifact_id
        api(client, lab, "PATCH", "/api/v1/work-orders/1", json={"notes": "cambio"})
        stub_worker()
        with lab.app_context():
            second = db.session.get(WorkOrder, 1).pdf_artifact_id
            assert second != first
            assert (
                db.session.get(Artifact, second).pinned
                and not db.session.get(Artifact, first).pinned
            )
