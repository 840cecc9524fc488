"""The browser pages as HTML: every job state with its landmarks (DESIGN §4), empty states, the
print button's count and disabled state, My jobs, and the glue the pages rely on."""

from __future__ import annotations

import io
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import JOB_STATES as STATES
from tests.conftest import AuthActions, add_user, job_in
from webapp.extensions import db
from webapp.models import Job, utcnow


class Page(HTMLParser):
    """A page's elements with their attributes and text: enough to find landmarks."""

    VOID = {"input", "br", "img", "meta", "link", "hr", "source", "wbr", "area", "col"}

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        forms = [e["attrs"].get("id") for e in self._open if e["tag"] == "form"]
        element = {
            "tag": tag,
            "attrs": dict(attrs),
            "text": "",
            "in_form": forms[-1] if forms else None,
        }
        self.elements.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element["text"] += data

    def find(self, tag: str | None = None, **attrs: Any) -> list[dict[str, Any]]:
        """Elements by tag and attributes (`data_job_status=True`: the attribute is present)."""

        def matches(element: dict[str, Any]) -> bool:
            for key, wanted in attrs.items():
                name = key.rstrip("_").replace("_", "-")
                if wanted is True:
                    if name not in element["attrs"]:
                        return False
                elif element["attrs"].get(name) != wanted:
                    return False
            return tag is None or element["tag"] == tag

        return [e for e in self.elements if matches(e)]

    def text(self, element: dict[str, Any]) -> str:
        return " ".join(element["text"].split())

    @staticmethod
    def form_of(element: dict[str, Any]) -> str | None:
        """The id of the form a control submits with: its form= attribute, else the enclosing form."""
        return element["attrs"].get("form") or element["in_form"]


def page_of(response: Any) -> Page:
    assert response.status_code == 200, response.status_code
    return Page(response.get_data(as_text=True))


@pytest.fixture
def site(app: Flask) -> Flask:
    """A staff user, an admin and 40 potting lots."""
    from webapp.nursery.demo import seed_lots

    with app.app_context():
        add_user()
        add_user("other@example.com", "pw-other")
        seed_lots(40)
    return app


@pytest.fixture
def browser(client: FlaskClient, auth: AuthActions, site: Flask) -> FlaskClient:
    assert auth.login().status_code == 302
    return client


def make(site: Flask, state: str, **kwargs: Any) -> str:
    with site.app_context():
        return job_in(state, **kwargs)


class TestJobPage:
    """The job page holds exactly one status partial, whatever the state."""

    @pytest.mark.parametrize("state", STATES)
    def test_the_page_has_one_status_partial_with_the_raw_status_and_a_title(
        self, site, browser, state
    ):
        job_id = make(site, state)
        page = page_of(browser.get(f"/jobs/{job_id}"))
        roots = page.find(data_job_status=True)
        assert len(roots) == 1
        root = roots[0]
        assert root["attrs"]["data-job-status"] == state
        assert root["attrs"]["id"] == f"job-status-{job_id}"
        assert root["attrs"]["data-title"].strip()
        assert "oppotpartijen_" in root["attrs"]["data-title"]

    @pytest.mark.parametrize("state", STATES)
    def test_the_partial_alone_is_the_same_element(self, site, browser, state):
        job_id = make(site, state)
        partial = Page(browser.get(f"/jobs/{job_id}/status").get_data(as_text=True))
        roots = partial.find(data_job_status=True)
        assert len(roots) == 1 and roots[0]["attrs"]["data-job-status"] == state
        assert not partial.find("html") and not partial.find("body")

    @pytest.mark.parametrize("state", ["queued", "running"])
    def test_live_states_poll_every_second(self, site, browser, state):
        job_id = make(site, state)
        root = page_of(browser.get(f"/jobs/{job_id}")).find(data_job_status=True)[0]
        assert root["attrs"]["hx-trigger"] == "every 1s"
        assert root["attrs"]["hx-swap"] == "outerHTML"

    @pytest.mark.parametrize("state", ["done", "failed", "cancelled", "expired"])
    def test_final_states_do_not_poll(self, site, browser, state):
        job_id = make(site, state)
        html = browser.get(f"/jobs/{job_id}/status").get_data(as_text=True)
        assert "hx-trigger" not in html and "every 1s" not in html

    def test_running_shows_counts_and_the_step(self, site, browser):
        job_id = make(site, "running")
        page = page_of(browser.get(f"/jobs/{job_id}"))
        root = page.find(data_job_status="running")[0]
        text = page.text(root)
        assert "1 of 3 labels" in text
        assert "Drawing labels" in text
        assert page.find("progress", value="1", max="3")
        assert root["attrs"]["data-title"].startswith("33%")

    def test_running_shows_the_time_left_once_there_is_a_rate(self, site, browser):
        job_id = make(site, "running")
        with site.app_context():  # started a minute ago, one of three done: two minutes left
            db.session.execute(
                sa.update(Job)
                .where(Job.id == job_id)
                .values(started_at=utcnow() - timedelta(seconds=60))
            )
            db.session.commit()
        page = page_of(browser.get(f"/jobs/{job_id}"))
        eta = page.find("span", class_="eta")
        assert eta and page.text(eta[0]) == "about 2 minutes left"

    def test_queued_says_it_waits_and_offers_cancel(self, site, browser):
        job_id = make(site, "queued")
        page = page_of(browser.get(f"/jobs/{job_id}"))
        root = page.find(data_job_status="queued")[0]
        assert "Waiting" in page.text(root)
        assert [b for b in page.find("button") if page.text(b) == "Cancel"]
        assert root["attrs"]["data-title"].startswith("Waiting")

    def test_done_has_a_prominent_download_link_and_a_ready_title(self, site, browser):
        job_id = make(site, "done")
        page = page_of(browser.get(f"/jobs/{job_id}"))
        root = page.find(data_job_status="done")[0]
        links = [a for a in page.find("a") if a["attrs"].get("href") == f"/jobs/{job_id}/download"]
        assert len(links) == 1
        assert page.text(links[0]).startswith("Download")
        assert {"button", "primary", "download"} <= set(links[0]["attrs"]["class"].split())
        assert root["attrs"]["data-title"].startswith("✓ Ready · oppotpartijen_")
        assert "Your file is ready." in page.text(root)

    def test_failed_shows_the_reason_and_try_again(self, site, browser):
        job_id = make(site, "failed")
        page = page_of(browser.get(f"/jobs/{job_id}"))
        root = page.find(data_job_status="failed")[0]
        text = page.text(root)
        assert page.text(page.find("p", class_="problem-title")[0]) == "The file could not be made."
        assert (
            "Potting lot #2 was deleted after this job was started; print the labels again." in text
        )  # the stored code, rendered for the reader
        assert root["attrs"]["data-title"].startswith("✗ Failed · oppotpartijen_")
        retry = page.find("form", action=f"/jobs/{job_id}/retry")
        assert retry and "Try again" in page.text(retry[0])

    def test_cancelled_offers_to_start_again(self, site, browser):
        job_id = make(site, "cancelled")
        page = page_of(browser.get(f"/jobs/{job_id}"))
        assert "Nothing was produced." in page.text(page.find(data_job_status="cancelled")[0])
        assert page.text(page.find("form", action=f"/jobs/{job_id}/retry")[0]) == "Start again"

    def test_expired_says_expired_regenerate(self, site, browser):
        job_id = make(site, "expired")
        page = page_of(browser.get(f"/jobs/{job_id}"))
        assert "expired — regenerate" in page.text(page.find(data_job_status="expired")[0])
        assert "Regenerate" in page.text(page.find("form", action=f"/jobs/{job_id}/retry")[0])
        assert not [a for a in page.find("a") if a["attrs"].get("href", "").endswith("/download")]


class TestMyJobs:
    """My jobs at /jobs: an empty state, one row per job, actions per state."""

    def test_my_jobs_answers_at_jobs_itself_without_a_redirect(self, browser):
        response = browser.get("/jobs")
        assert response.status_code == 200 and "Location" not in response.headers
        assert page_of(response).find("div", class_="empty")

    def test_no_jobs_shows_an_empty_state_with_a_way_to_start(self, browser):
        page = page_of(browser.get("/jobs/"))
        empty = page.find("div", class_="empty")
        assert empty and "No jobs yet." in page.text(empty[0])
        assert any(a["attrs"].get("href") == "/nursery/potting-lots" for a in page.find("a"))
        assert not page.find("table")

    def test_every_job_is_a_row_with_its_raw_state_and_a_translated_badge(self, site, browser):
        ids = {state: make(site, state, lot_ids=[i + 1]) for i, state in enumerate(STATES)}
        page = page_of(browser.get("/jobs/"))
        rows = {r["attrs"]["data-job-id"]: r for r in page.find("tr", data_job_id=True)}
        assert set(rows) == set(ids.values())
        for state, job_id in ids.items():
            assert rows[job_id]["attrs"]["data-job-status"] == state
        assert "Queued" in page.text(rows[ids["queued"]])
        assert "Done" in page.text(rows[ids["done"]])

    def test_a_done_job_can_be_downloaded_and_a_failed_one_started_again(self, site, browser):
        done, failed, cancelled, expired = (
            make(site, s, lot_ids=[i + 1])
            for i, s in enumerate(("done", "failed", "cancelled", "expired"))
        )
        page = page_of(browser.get("/jobs/"))
        downloads = [
            a for a in page.find("a") if a["attrs"].get("href") == f"/jobs/{done}/download"
        ]
        assert downloads and page.text(downloads[0]).startswith("Download")
        for job_id, label in (
            (failed, "Start again"),
            (cancelled, "Start again"),
            (expired, "Regenerate"),
        ):
            form = page.find("form", action=f"/jobs/{job_id}/retry")
            assert form and page.text(form[0]) == label

    def test_start_again_runs_the_job_again(self, site, browser):
        job_id = make(site, "failed")
        response = browser.post(f"/jobs/{job_id}/retry")
        assert response.status_code == 303
        with site.app_context():
            assert db.session.get(Job, job_id).status == "queued"

    def test_the_list_refreshes_itself_only_while_a_job_is_live(self, site, browser):
        make(site, "done", lot_ids=[1])
        assert not page_of(browser.get("/jobs/")).find(id="jobs-list", hx_trigger=True)
        make(site, "queued", lot_ids=[2])
        listing = page_of(browser.get("/jobs/")).find(id="jobs-list")[0]
        assert listing["attrs"]["hx-trigger"].startswith("every ")
        assert listing["attrs"]["hx-select"] == "#jobs-list"

    def test_someone_elses_jobs_are_not_listed(self, site, browser):
        make(site, "queued", owner_email="other@example.com")
        assert not page_of(browser.get("/jobs/")).find("tr", data_job_id=True)


def print_button(page: Page) -> dict[str, Any]:
    """The filtered print: the main button while no row is ticked."""
    buttons = page.find("button", data_print_filtered=True)
    assert len(buttons) == 1, [page.text(b) for b in page.find("button")]
    return buttons[0]


class TestPottingLotTable:
    """The print button says how many labels it prints and is disabled, with a reason, at zero."""

    def test_the_print_button_counts_every_row_the_filters_select(self, browser):
        page = page_of(browser.get("/nursery/potting-lots"))
        button = print_button(page)
        assert page.text(button) == "Print all 40 lots (40 labels)"
        assert "primary" in button["attrs"]["class"]
        assert "disabled" not in button["attrs"]

    def test_the_print_button_counts_a_filtered_table(self, site, browser):
        with site.app_context():
            location = db.session.execute(
                sa.text("SELECT location FROM potting_lots LIMIT 1")
            ).scalar()
            count = db.session.execute(
                sa.text("SELECT count(*) FROM potting_lots WHERE location = :l"), {"l": location}
            ).scalar()
        page = page_of(browser.get("/nursery/potting-lots", query_string={"location": location}))
        assert page.text(print_button(page)) == f"Print all {count} filtered lots ({count} labels)"
        hidden = page.find("input", type="hidden", name="location")
        assert hidden and hidden[0]["attrs"]["value"] == location

    def test_no_matching_row_disables_the_button_with_a_message(self, browser):
        page = page_of(browser.get("/nursery/potting-lots", query_string={"q": "no such plant"}))
        button = print_button(page)
        assert page.text(button) == "Nothing to print"
        assert "disabled" in button["attrs"]
        reason = page.find(id=button["attrs"]["aria-describedby"])
        assert reason and "nothing to print" in page.text(reason[0])
        assert "No potting lots match these filters." in page.text(
            page.find("div", class_="empty")[0]
        )

    def test_a_bad_week_disables_printing_and_keeps_what_was_typed(self, browser):
        page = page_of(browser.get("/nursery/potting-lots", query_string={"week": "2026-W99"}))
        assert "disabled" in print_button(page)["attrs"]
        week = page.find("input", name="week")[0]
        assert week["attrs"]["value"] == "2026-W99" and week["attrs"]["aria-invalid"] == "true"
        assert "no ISO week 99" in page.text(page.find(id="filter-error")[0])
        assert not page.find("table")

    def test_an_empty_nursery_invites_an_import(self, app, client, auth):
        with app.app_context():
            add_user()
        auth.login()
        page = page_of(client.get("/nursery/potting-lots"))
        assert "disabled" in print_button(page)["attrs"]
        empty = page.find("div", class_="empty")[0]
        assert "There are no potting lots yet." in page.text(empty)
        assert any(a["attrs"].get("href") == "/nursery/potting-lots/import" for a in page.find("a"))

    def test_the_print_options_share_the_print_buttons_form(self, browser):
        page = page_of(browser.get("/nursery/potting-lots"))
        form = page.find("form", id="print-form")[0]
        assert form["attrs"]["method"] == "post"
        assert Page.form_of(print_button(page)) == "print-form"
        for name in ("layout", "copies", "start_position", "offset_x", "offset_y", "csrf_token"):
            assert "print-form" in {Page.form_of(e) for e in page.find(name=name)}, name
        # Ticked rows and their button belong to the same form: a reprint uses the same options.
        boxes = page.find("input", type="checkbox", name="lot_id")
        assert len(boxes) == 40 and {Page.form_of(b) for b in boxes} == {"print-form"}
        ticked = page.find("button", data_print_ticked=True)[0]
        assert Page.form_of(ticked) == "print-form"
        assert ticked["attrs"]["formaction"] == "/nursery/potting-lots/print-ticked"

    def test_the_filters_are_get_parameters_named_like_the_api_keys(self, browser):
        page = page_of(browser.get("/nursery/potting-lots"))
        search = page.find("form", role="search")[0]
        assert search["attrs"]["method"] == "get"
        names = {e["attrs"].get("name") for e in page.find("input") + page.find("select")}
        assert {"q", "lot_number", "pot_size", "location", "week"} <= names

    def test_a_rows_reprint_button_uses_its_own_form(self, browser):
        page = page_of(browser.get("/nursery/potting-lots"))
        row_buttons = page.find("button", name="lot_id")
        assert len(row_buttons) == 40
        assert {Page.form_of(b) for b in row_buttons} == {"reprint-one"}
        assert page.find("form", id="reprint-one", action="/nursery/potting-lots/reprint")

    def test_pages_of_fifty_rows_link_to_each_other_keeping_the_filters(self, app, client, auth):
        from webapp.nursery.demo import seed_lots

        with app.app_context():
            add_user()
            seed_lots(120)
        auth.login()
        page = page_of(client.get("/nursery/potting-lots", query_string={"lot_number": "P"}))
        assert page.text(print_button(page)) == "Print all 120 filtered lots (120 labels)"
        nxt = page.find("a", rel="next")[0]["attrs"]["href"]
        assert "page=2" in nxt and "lot_number=P" in nxt


class TestOtherPages:
    """Login, import errors, error pages and the shared frame."""

    def test_the_login_page_has_email_and_password_fields(self, client):
        page = page_of(client.get("/login"))
        assert page.find("input", name="email", type="email")
        assert page.find("input", name="password", type="password")
        assert [b for b in page.find("button") if b["attrs"].get("type") == "submit"]

    def test_an_empty_login_says_which_field_is_missing(self, site, client):
        page = Page(
            client.post("/login", data={"email": "", "password": ""}).get_data(as_text=True)
        )
        email = page.find("input", name="email")[0]
        assert email["attrs"].get("aria-invalid") == "true"
        assert page.find(id="email-error")

    def test_the_import_page_lists_bad_rows_by_row(self, browser):
        csv = (
            "lot_number,plant_name,pot_size,quantity,potting_date,location,customer\n"
            "P1,Hosta,P9,many,2026-03-01,Kas 1,\n"
        )
        response = browser.post(
            "/nursery/potting-lots/import",
            data={"file": (io.BytesIO(csv.encode()), "lots.csv")},
            content_type="multipart/form-data",
            follow_redirects=True,  # to the step with the dry run (the file is kept)
        )
        page = page_of(response)
        errors = page.text(page.find(id="import-errors")[0])
        assert "Row 2" in errors and "Quantity" in errors and "many is not a whole number" in errors

    def test_an_unknown_page_is_a_friendly_404(self, browser):
        response = browser.get("/no/such/page")
        assert response.status_code == 404
        page = Page(response.get_data(as_text=True))
        assert page.text(page.find("h1")[0]) == "Not found"
        assert "There is no page at this address." in response.get_data(as_text=True)

    def test_every_page_carries_the_csrf_header_and_the_message_areas(self, browser):
        page = page_of(browser.get("/jobs/"))
        body = page.find("body")[0]
        assert "X-CSRFToken" in body["attrs"]["hx-headers"]
        assert page.find(id="net-status", hidden=True)
        assert page.find(id="toast", role="alert")
        scripts = [s["attrs"]["src"] for s in page.find("script")]
        assert scripts == ["/static/vendor/htmx.min.js", "/static/app.js"]  # no CDN

    def test_the_language_switch_is_a_form_with_one_button_per_language(self, browser):
        page = page_of(browser.get("/jobs/"))
        form = page.find("form", action="/settings/language")[0]
        assert form["attrs"]["method"] == "post"
        assert {b["attrs"]["value"] for b in page.find("button", name="locale")} == {
            "en",
            "nl",
            "es",
        }
        assert page.find("button", name="locale", value="en")[0]["attrs"]["aria-pressed"] == "true"


class TestGlue:
    """static/app.js handles what htmx leaves to the page (DESIGN §4)."""

    @pytest.fixture
    def script(self) -> str:
        from webapp import ROOT

        return (ROOT / "static" / "app.js").read_text()

    def test_htmx_error_answers_are_shown_in_one_place(self, script):
        assert script.count('addEventListener("htmx:responseError"') == 1
        assert "htmx:sendError" in script

    def test_the_tab_title_follows_the_partials_data_title(self, script):
        assert "htmx:afterSwap" in script and "dataset.title" in script
