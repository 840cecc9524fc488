"""Every page works under the strict Content-Security-Policy (issue 9): no inline script or style
of ours or of htmx, no eval. The `context` fixture (tests/browser/conftest.py) fails a test whose
pages met a violation; these tests walk the pages and check that what htmx and app.js do still
happens: a job page polls until its download appears, the admin panel polls, the veterinarian
picker of a new work order reloads its protocols."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from tests.browser.pages import log_in, shot
from tests.services import ADMIN, Stack
from webapp.db import write_txn
from webapp.extensions import db
from webapp.lab.demo import seed_lab
from webapp.lab.service import queue_documents
from webapp.models import Protocol

pytestmark = pytest.mark.browser

STACK = {"processes": 1, "lots": 30}
JOB_PAGE = re.compile(r"/jobs/([A-Za-z0-9_-]+)$")

STAFF_PAGES = [
    ("/nursery/potting-lots", "lots"),
    ("/nursery/potting-lots/import", "import"),
    ("/jobs", "my-jobs"),
    ("/lab/reception", "lab-reception"),
    ("/lab/protocols", "lab-protocols"),
    ("/lab/protocols/1", "lab-protocol"),
    ("/lab/reports", "lab-reports"),
    ("/lab/reports/1", "lab-report"),
    ("/lab/work-orders", "lab-work-orders"),
    ("/lab/work-orders/new", "lab-work-order-new"),
    ("/account", "account"),
]
ADMIN_PAGES = ["/admin", "/admin/bulk", "/admin/stats", "/admin/audit", "/admin/mails"]


@pytest.fixture(scope="module")
def lab(stack: Stack) -> Stack:
    with stack.context():
        ids = seed_lab(4)
        with write_txn() as session:
            queue_documents(session, ids)
    return stack


def visit(page: Any, path: str, status: int = 200) -> Any:
    answer = page.goto(path)
    assert answer is not None and answer.status == status, (path, answer and answer.status)
    policy = answer.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy and "style-src 'self'" in policy, policy
    page.wait_for_load_state("load")
    return answer


def no_violations(console: Any) -> None:
    assert console.csp_violations() == [], console.csp_violations()


class TestPagesUnderTheCsp:
    def test_a_violation_is_seen_by_the_fixture(self, lab, page, console, app_ctx):
        # What the fixture would fail a test for: an inline script and an inline style, as a
        # template or a swapped-in fragment would bring them.
        visit(page, "/login")
        with page.expect_console_message(lambda m: "directive 'script-src" in m.text):
            page.evaluate(
                "() => { const s = document.createElement('script');"
                " s.textContent = 'window.ran = true'; document.head.append(s); }"
            )
        with page.expect_console_message(lambda m: "directive 'style-src" in m.text):
            page.evaluate(
                "() => document.body.insertAdjacentHTML('beforeend', '<p style=\"color: red\">x</p>')"
            )
        assert page.evaluate("window.ran") is None  # blocked, not run
        seen = console.csp_violations()
        assert any("script-src" in m for m in seen) and any("style-src" in m for m in seen), seen
        console.messages.clear()  # seen on purpose: the fixture must not fail this test

    def test_the_staff_pages_load_without_a_violation(self, lab, page, console, app_ctx):
        from playwright.sync_api import expect

        visit(page, "/login")
        shot(page, "csp-login")
        log_in(page)
        for path, name in STAFF_PAGES:
            visit(page, path)
            shot(page, f"csp-{name}")
        # The label preview is an image of our own origin.
        visit(page, "/nursery/potting-lots")
        preview = page.locator("#label-preview")
        expect(preview).to_be_visible()
        page.wait_for_function("document.getElementById('label-preview').naturalWidth > 0")
        # The public page of a protocol (the QR code's target) and an error page.
        external = db.session.scalar(sa.select(Protocol.external_id).where(Protocol.id == 1))
        visit(page, f"/protocols/public/{external}/")
        visit(page, "/no-such-page", status=404)
        shot(page, "csp-404")
        no_violations(console)

    def test_the_veterinarian_picker_reloads_the_protocols_without_an_inline_handler(
        self, lab, page, console, app_ctx
    ):
        visit(page, "/login")
        log_in(page)
        visit(page, "/lab/work-orders/new")
        picker = page.locator("#wo-vet")
        values = picker.locator("option").evaluate_all("(os) => os.map((o) => o.value)")
        chosen = picker.input_value()
        other = next(v for v in values if v != chosen)
        with page.expect_navigation():
            picker.select_option(other)
        assert f"veterinarian_id={other}" in page.url
        assert page.locator("#wo-vet").input_value() == other
        no_violations(console)

    def test_a_job_page_polls_until_its_download_appears(self, lab, page, console, app_ctx):
        from playwright.sync_api import expect

        # The only worker busy with a paced job: the labels wait, so the page sees them live.
        blocker = lab.submit_paced(steps=1)
        lab.wait_steps(blocker.id, 0)
        visit(page, "/login")
        log_in(page)
        visit(page, "/nursery/potting-lots")
        page.locator("#print-form button[name=print]").click()  # every lot the filters select
        page.wait_for_url(JOB_PAGE)
        status = page.locator("[data-job-status]")
        expect(status).to_have_attribute("data-job-status", "queued")
        shot(page, "csp-job-waiting")
        page.evaluate("window.sameDocument = true")

        lab.allow(blocker, 1)
        expect(status).to_have_attribute("data-job-status", "done", timeout=30_000)
        download = page.locator("a.download")
        expect(download).to_be_visible()
        expect(download).to_contain_text("Download")
        # Swapped in by htmx's polling, not by a reload; the title followed (app.js).
        assert page.evaluate("window.sameDocument") is True
        assert page.title().startswith("✓")
        shot(page, "csp-job-done")
        no_violations(console)

    def test_the_admin_pages_load_and_the_panel_polls(self, lab, page, console, app_ctx):
        from playwright.sync_api import expect

        visit(page, "/login")
        log_in(page, *ADMIN)
        for path in ADMIN_PAGES:
            visit(page, path)
            shot(page, "csp-" + path.strip("/").replace("/", "-"))
        visit(page, "/admin")
        # The panel polls every 5 s while the tab is visible, and swaps itself in again.
        page.evaluate("document.getElementById('admin-panel').dataset.old = '1'")
        with page.expect_response(re.compile(r"/admin/panel"), timeout=20_000) as answer:
            pass
        assert answer.value.status == 200
        expect(page.locator("#admin-panel")).to_have_count(1)
        expect(page.locator("#admin-panel[data-old]")).to_have_count(0)
        no_violations(console)
