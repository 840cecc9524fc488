"""The lab in real Chromium (DESIGN §4a): a sample received at the reception desk gets its
label; a report finalised from its page turns FINAL; a work order's page shows "being updated"
while its new version waits for the worker and "stale" when the data moved on with nothing
queued. The only worker is held by a paced job (tests/support/paced.py) while the test looks
at a waiting state, so nothing races the renderer."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from tests.browser.pages import log_in, shot
from tests.services import Stack
from webapp.db import write_txn
from webapp.extensions import db
from webapp.lab.demo import seed_lab
from webapp.lab.service import queue_documents
from webapp.models import Job, Report, Veterinarian, WorkOrder

pytestmark = pytest.mark.browser

STACK = {"processes": 1, "lots": 5}


@pytest.fixture(scope="module")
def lab(stack: Stack) -> Stack:
    with stack.context():
        ids = seed_lab(6)
        with write_txn() as session:
            queue_documents(session, ids)
    return stack


def signed_in(page: Any) -> None:
    page.goto("/login")
    log_in(page)


class TestLabFlow:
    def test_a_sample_received_at_the_desk_gets_its_number_and_label(self, lab, page, app_ctx):
        from playwright.sync_api import expect

        signed_in(page)
        page.goto("/lab/reception")
        db.session.commit()
        vet = db.session.scalars(sa.select(Veterinarian).order_by(Veterinarian.name)).first()
        page.get_by_label("Veterinarian").select_option(str(vet.id))
        page.get_by_label("Animal").fill("Ñuño <b>")
        page.get_by_label("Species").fill("Erizo africano")
        page.get_by_label("Cytology").check()
        shot(page, "lab-1-reception")
        page.get_by_role("button", name="Receive and make the label").click()
        page.wait_for_url(re.compile(r"/lab/protocols/\d+$"))
        heading = page.locator("h1")
        expect(heading).to_contain_text(re.compile(r"CT \d\d/\d{4}"))
        expect(page.locator("body")).to_contain_text("Ñuño <b>")  # escaped, shown as text
        download = page.get_by_role("link", name=re.compile("^Download"))
        expect(download).to_be_visible(timeout=30_000)
        shot(page, "lab-2-protocol")
        with page.expect_download() as info:
            download.first.click()
        assert info.value.suggested_filename.startswith("label_CT_")

    def test_finalising_a_report_from_its_page(self, lab, page, app_ctx):
        from playwright.sync_api import expect

        signed_in(page)
        page.goto("/lab/reports/2")
        expect(page.locator("[data-report-status]")).to_have_attribute(
            "data-report-status", "draft"
        )
        page.get_by_role("button", name=re.compile("^Finalise")).click()
        status = page.locator("[data-job-status]")
        expect(status).to_have_attribute("data-job-status", "done", timeout=30_000)
        # The heading's badge turned final with the last poll, without a reload.
        expect(page.locator("h1 [data-report-status]")).to_have_attribute(
            "data-report-status", "final"
        )
        shot(page, "lab-3-finalised")
        page.reload()
        expect(page.locator("[data-report-status]")).to_have_attribute(
            "data-report-status", "final"
        )
        expect(page.locator("[data-mail-status]")).to_have_attribute(
            "data-mail-status", "done", timeout=30_000
        )
        assert db.session.get(Report, 2) is not None

    def test_work_order_badges_being_updated_then_current_and_stale(self, lab, page, app_ctx):
        from playwright.sync_api import expect

        db.session.commit()
        report = db.session.get(Report, 3)
        created = lab.api(
            "POST",
            "/api/v1/work-orders",
            json_body={"veterinarian_id": report.protocol.veterinarian_id, "protocol_ids": [3]},
        )
        assert created.status == 201, created.body
        order_id = created.json()["id"]
        lab.wait_status(created.json()["job"]["id"], "done")

        signed_in(page)
        page.goto(f"/lab/work-orders/{order_id}")
        document = page.locator("[data-document-status]")
        expect(document).to_have_attribute("data-document-status", "current")

        # The only worker busy: the edit's new version waits, the old PDF is served meanwhile.
        blocker = lab.submit_paced(steps=1)
        lab.wait_steps(blocker.id, 0)
        page.get_by_label("Notes (printed on the PDF)").fill("Entregar antes del viernes")
        page.get_by_role("button", name="Save and update the PDF").click()
        expect(document).to_have_attribute("data-document-status", "updating")
        expect(page.locator(".badge-doc-updating")).to_have_text("Being updated")
        served = lab.api("GET", f"/api/v1/work-orders/{order_id}/pdf")
        assert served.status == 200 and served.header("Pressroom-Document-Status") == "updating"
        shot(page, "lab-4-updating")

        # Released, the new version is made and the badge turns current without a reload.
        lab.allow(blocker, 1)
        expect(document).to_have_attribute("data-document-status", "current", timeout=30_000)

        # An edit whose generation was cancelled leaves the stored PDF stale.
        blocker = lab.submit_paced(steps=1)
        lab.wait_steps(blocker.id, 0)
        patched = lab.api(
            "PATCH", f"/api/v1/work-orders/{order_id}", json_body={"notes": "Cambio sin PDF"}
        )
        assert patched.status == 200 and patched.json()["version"] == 3
        job_id = patched.json()["job"]["id"]
        assert lab.api("POST", f"/api/v1/jobs/{job_id}/cancel").status == 200
        lab.allow(blocker, 1)
        page.reload()
        expect(document).to_have_attribute("data-document-status", "stale")
        expect(page.locator(".badge-doc-stale")).to_have_text("Stale")
        shot(page, "lab-5-stale")
        db.session.commit()
        assert db.session.get(WorkOrder, order_id).pdf_version == 2
        assert (
            db.session.scalar(sa.select(sa.func.count(Job.id)).where(Job.kind == "work_order")) >= 3
        )
