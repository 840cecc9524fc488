"""The browser flow (DESIGN §4, §7) in real Chromium against gunicorn, Dramatiq workers and Redis.

A live job is held by a `test_paced` job's gate (tests/support/paced.py) while the test reloads,
drops the network, restarts the web server or expires the session: the paced job itself, held
half way, or, for labels printed from the table, the paced job that keeps the only worker busy
so the labels wait their turn. Released, it finishes. So the live state is observed for sure,
however fast the machine renders.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.pages import log_in, shot
from tests.services import FILE_NAME, Stack
from webapp.models import Job

pytestmark = pytest.mark.browser

KIND = "potting_lot_labels"
# One worker process: a paced job at its gate keeps it busy, and Chromium needs the CPU.
STACK = {"processes": 1, "lots": 200, "env": {"CHUNK_LABELS": "50000"}}
JOB_PAGE = re.compile(r"/jobs/([A-Za-z0-9_-]+)$")


def status_of(page: Any) -> Any:
    return page.locator("[data-job-status]")


def running_paced_job(stack: Stack) -> Job:
    """A paced job of two steps that the only worker holds after its first one."""
    job = stack.submit_paced(steps=2)
    stack.allow(job, 1)
    return stack.wait_steps(job.id, 1)


class TestPrintFlow:
    """From the potting-lot table to the downloaded file, through reload and a lost network."""

    def test_printing_from_the_table_follows_the_job_to_its_download(
        self, stack, context, page, app_ctx
    ):
        from playwright.sync_api import expect

        # Given the only worker process busy with another job (held at its gate), so the labels
        # wait their turn however fast they render
        blocker = stack.submit_paced(steps=1)
        stack.wait_steps(blocker.id, 0)
        # … and a logged-in user on the potting-lot table
        page.goto("/login")
        log_in(page)
        page.goto("/nursery/potting-lots")
        button = page.get_by_role("button", name=re.compile(r"^Print all 200 lots"))
        expect(button).to_be_enabled()
        expect(button).to_contain_text("(200 labels)")
        button.locator("xpath=ancestor::form").locator("[name=copies]").fill("50")
        shot(page, "1-table")

        # When they press "Print all 200 lots", they land on the job's page with one status partial
        button.click()
        page.wait_for_url(JOB_PAGE)
        job_id = JOB_PAGE.search(page.url).group(1)
        status = status_of(page)
        expect(status).to_have_count(1)
        assert stack.job(job_id).progress_total == 50 * 200

        # … which shows the job waiting for the worker, and polling
        expect(status).to_have_attribute("data-job-status", "queued")
        expect(status).to_have_attribute("hx-trigger", "every 1s")
        shot(page, "2-waiting")

        # Reloading shows the same job, still waiting
        page.reload()
        assert JOB_PAGE.search(page.url).group(1) == job_id
        expect(status).to_have_count(1)
        expect(status).to_have_attribute("id", f"job-status-{job_id}")
        expect(status).to_have_attribute("data-job-status", "queued")

        # The network drops: the page says so
        context.set_offline(True)
        expect(page.locator("#net-status")).to_be_visible(timeout=30_000)
        shot(page, "3-offline")

        # The worker is freed, and the job runs and finishes while the browser is still offline …
        stack.allow(blocker, 1)
        done = stack.wait_status(job_id, "done")
        expect(status).to_have_attribute("data-job-status", "queued")
        # … and once the network is back, polling picks it up
        context.set_offline(False)
        expect(status).to_have_attribute("data-job-status", "done", timeout=30_000)
        expect(page.locator("#net-status")).to_be_hidden()
        assert status.get_attribute("hx-trigger") is None  # final state: polling stops
        shot(page, "4-done")

        # Then the download link gives the PDF under its week-based name
        # (by its text: the accessible name also holds the CSS icon drawn before it)
        link = page.locator("a").filter(has_text=re.compile(r"^\s*Download"))
        expect(link).to_have_count(1)
        with page.expect_download() as info:
            link.click()
        download = info.value
        assert FILE_NAME.fullmatch(download.suggested_filename), download.suggested_filename
        data = Path(download.path()).read_bytes()
        assert data.startswith(b"%PDF-")
        assert hashlib.sha256(data).hexdigest() == done.artifact.sha256

        # And "My jobs" lists it
        page.goto("/jobs")
        expect(page.locator(f'a[href$="/jobs/{job_id}"]').first).to_be_visible()
        shot(page, "5-my-jobs")


class TestInterruptions:
    """The page survives what happens to users: expired sessions and web server restarts."""

    def test_an_expired_session_while_polling_leads_through_login_back_to_the_job(
        self, stack, context, page, app_ctx
    ):
        from playwright.sync_api import expect

        page.goto("/login")
        log_in(page)
        job = running_paced_job(stack)
        job_id = job.id
        page.goto(f"/jobs/{job_id}")
        expect(status_of(page)).to_have_attribute("data-job-status", "running")

        # When the session is gone, the next poll (401 + HX-Redirect) goes to the login page
        answers: list[tuple[float, int, str, str | None]] = []
        page.on(
            "response",
            lambda r: answers.append(
                (time.monotonic(), r.status, r.url[-70:], r.headers.get("hx-redirect"))
            ),
        )
        page.on(
            "requestfailed",
            lambda r: answers.append((time.monotonic(), 0, r.url[-70:], r.failure)),
        )
        context.clear_cookies()
        cleared = time.monotonic()
        try:
            page.wait_for_url(re.compile(r"/login\?"), timeout=30_000)
        except Exception as exc:  # say what the page was answered meanwhile
            seen = [(round(at - cleared, 2), *rest) for at, *rest in answers]
            raise AssertionError(f"no login page; answers since the cookies went: {seen}") from exc
        query = parse_qs(urlsplit(page.url).query)
        assert query["next"] == [f"/jobs/{job_id}"] and query.get("expired") == ["1"]
        expect(status_of(page)).to_have_count(0)  # a page, not a swapped fragment
        expect(page.get_by_text(re.compile("session expired", re.I))).to_be_visible()
        shot(page, "6-session-expired")

        # Then logging in again leads back to the same job, still polling
        log_in(page)
        assert JOB_PAGE.search(page.url).group(1) == job_id
        expect(status_of(page)).to_have_attribute("data-job-status", "running")
        # … where it shows the job done once it may finish
        stack.allow(job, 2)
        expect(status_of(page)).to_have_attribute("data-job-status", "done", timeout=30_000)

    def test_the_page_resumes_after_the_web_server_restarts(self, stack, context, page, app_ctx):
        from playwright.sync_api import expect

        page.goto("/login")
        log_in(page)
        job = running_paced_job(stack)
        job_id = job.id
        page.goto(f"/jobs/{job_id}")
        expect(status_of(page)).to_have_attribute("data-job-status", "running")
        stack.web.stop()
        expect(page.locator("#net-status")).to_be_visible(timeout=30_000)
        stack.start_web()
        # The session cookie still holds (one SECRET_KEY), and polling carries on to the end
        stack.allow(job, 2)
        expect(status_of(page)).to_have_attribute("data-job-status", "done", timeout=30_000)
        expect(page.locator("#net-status")).to_be_hidden()
