"""Printer profiles, the ticked-rows print, the sheet preview and the limits shown before a
print: the pages as HTML and the jobs they start (the browser side: tests/browser/
test_nursery_selection.py)."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from tests.conftest import AuthActions, add_user, job_in
from tests.unit.test_ui import Page, page_of
from webapp.extensions import db
from webapp.models import Job, PottingLot, PrinterProfile, utcnow

SHEET = {
    "name": "Office A4",
    "layout": "custom_sheet",
    "label_w": "60",
    "label_h": "30",
    "page_w": "210",
    "page_h": "297",
    "cols": "3",
    "rows": "9",
    "left": "10",
    "top": "10,5",  # a Dutch decimal comma
    "gap_x": "5",
    "gap_y": "2",
    "start_position": "4",
    "copies": "2",
    "offset_x": "0.5",
    "offset_y": "-1",
}


@pytest.fixture
def site(app: Flask) -> Flask:
    from webapp.nursery.demo import seed_lots

    with app.app_context():
        add_user()
        add_user("other@example.com", "pw-other")
        seed_lots(120)
    return app


@pytest.fixture
def browser(client: FlaskClient, auth: AuthActions, site: Flask) -> FlaskClient:
    assert auth.login().status_code == 302
    return client


def lot_ids(site: Flask, limit: int, offset: int = 0) -> list[int]:
    with site.app_context():
        return list(
            db.session.scalars(
                sa.select(PottingLot.id).order_by(PottingLot.lot_number).limit(limit).offset(offset)
            )
        )


def last_job(site: Flask) -> Job:
    with site.app_context():
        job = db.session.scalars(
            sa.select(Job).where(Job.parent_id.is_(None)).order_by(Job.created_at.desc())
        ).first()
        assert job is not None
        db.session.expunge(job)
        return job


def profiles_of(site: Flask) -> list[PrinterProfile]:
    with site.app_context():
        rows = list(db.session.scalars(sa.select(PrinterProfile).order_by(PrinterProfile.id)))
        for row in rows:
            db.session.expunge(row)
        return rows


def button(page: Page, **attrs: Any) -> dict[str, Any]:
    found = page.find("button", **attrs)
    assert len(found) == 1, [page.text(b) for b in page.find("button")]
    return found[0]


class TestProfiles:
    def test_a_custom_sheet_profile_is_saved_checked_and_preselected(self, site, browser):
        response = browser.post("/nursery/printer-profiles/new", data=SHEET)
        assert response.status_code == 303
        (profile,) = profiles_of(site)
        assert profile.layout == "custom" and profile.start_position == 4 and profile.copies == 2
        assert profile.custom["kind"] == "sheet" and profile.custom["top"] == 10.5
        assert profile.custom["cols"] == 3 and profile.offset_y == -1.0

        page = page_of(browser.get("/nursery/potting-lots"))
        chosen = page.find("select", name="profile_id")[0]
        selected = [o for o in page.find("option") if "selected" in o["attrs"]]
        assert any(o["attrs"].get("value") == str(profile.id) for o in selected), chosen
        layout = [o for o in selected if o["attrs"].get("value") == "custom"]
        assert layout and "3 × 9 labels of 60 × 30 mm" in page.text(layout[0])
        assert page.find("input", name="copies", value="2")
        assert page.find("input", name="start_position", value="4", max="27")

    def test_a_refused_profile_comes_back_with_what_was_typed(self, site, browser):
        typed = {**SHEET, "label_w": "80", "name": "  Too wide  "}
        response = browser.post("/nursery/printer-profiles/new", data=typed)
        assert response.status_code == 422
        page = Page(response.get_data(as_text=True))
        assert page.find("input", name="label_w", value="80")
        assert page.find("input", name="name", value="  Too wide  ")
        assert page.find("option", value="custom_sheet", selected=True)
        cols = page.find("input", name="cols")[0]
        assert cols["attrs"]["aria-invalid"] == "true"
        assert "past the sheet's right edge" in page.text(page.find(id="err-cols")[0])
        # A number that is no number is named as such, next to its field
        response = browser.post("/nursery/printer-profiles/new", data={**SHEET, "copies": "abc"})
        page = Page(response.get_data(as_text=True))
        assert page.find("input", name="copies", value="abc", aria_invalid="true")
        assert "Enter a whole number." in page.text(page.find(id="err-copies")[0])
        assert profiles_of(site) == []

    def test_names_are_unique_per_user_and_profiles_are_private(self, site, browser, client):
        roll = {"name": "Brother", "layout": "roll_62x29", "start_position": "1", "copies": "1"}
        roll |= {"offset_x": "0", "offset_y": "0"}
        assert browser.post("/nursery/printer-profiles/new", data=roll).status_code == 303
        again = browser.post("/nursery/printer-profiles/new", data=roll)
        assert again.status_code == 422
        assert "already have a printer profile" in again.get_data(as_text=True)
        (profile,) = profiles_of(site)
        browser.post("/logout")
        AuthActions(client).login("other@example.com", "pw-other")
        assert client.get(f"/nursery/printer-profiles/{profile.id}").status_code == 404
        assert client.post(f"/nursery/printer-profiles/{profile.id}/delete").status_code == 303
        assert len(profiles_of(site)) == 1  # not theirs to delete

    def test_edit_and_delete(self, site, browser):
        browser.post("/nursery/printer-profiles/new", data=SHEET)
        (profile,) = profiles_of(site)
        edited = {**SHEET, "layout": "custom_roll", "label_w": "50", "label_h": "25"}
        edited["start_position"] = "1"
        response = browser.post(f"/nursery/printer-profiles/{profile.id}", data=edited)
        assert response.status_code == 303
        (profile,) = profiles_of(site)
        assert profile.custom == {**profile.custom, "kind": "roll", "label_w": 50.0}
        listing = page_of(browser.get("/nursery/printer-profiles"))
        assert "Custom roll, 50 × 25 mm" in listing.text(listing.find("table")[0])
        assert browser.post(f"/nursery/printer-profiles/{profile.id}/delete").status_code == 303
        assert profiles_of(site) == []

    def test_a_print_with_a_custom_profile_goes_through_the_kinds_checks(self, site, browser):
        browser.post("/nursery/printer-profiles/new", data=SHEET)
        (profile,) = profiles_of(site)
        form = {"profile_id": str(profile.id), "layout": "custom", "copies": "1"}
        response = browser.post(
            "/nursery/potting-lots/print", data={**form, "start_position": "27"}
        )
        assert response.status_code == 303 and "/jobs/" in response.headers["Location"]
        job = last_job(site)
        assert job.params["custom_layout"]["cols"] == 3 and job.params["start_position"] == 27
        # A start past the grid is refused, and the form comes back as it was sent
        refused = browser.post(
            "/nursery/potting-lots/print",
            data={**form, "start_position": "28"},
            headers={"Referer": "/nursery/potting-lots"},
        )
        assert refused.status_code == 303 and refused.headers["Location"].endswith("/potting-lots")
        page = page_of(browser.get("/nursery/potting-lots"))
        start = page.find("input", name="start_position")[0]
        assert start["attrs"]["value"] == "28" and start["attrs"]["aria-invalid"] == "true"
        assert "Enter 27 or less." in page.text(page.find(id="err-start_position")[0])

    def test_a_custom_layout_without_ones_own_profile_is_refused(self, site, browser):
        response = browser.post(
            "/nursery/potting-lots/print",
            data={"layout": "custom", "profile_id": "999"},
            headers={"Referer": "/nursery/potting-lots"},
        )
        assert response.status_code == 303
        with site.app_context():
            assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 0

    def test_the_last_print_without_a_profile_is_what_the_panel_shows_next(self, site, browser):
        browser.post("/nursery/printer-profiles/new", data=SHEET)
        data = {"profile_id": "", "layout": "a4_2x7", "copies": "3", "start_position": "5"}
        assert browser.post("/nursery/potting-lots/print", data=data).status_code == 303
        page = page_of(browser.get("/nursery/potting-lots"))
        assert page.find("option", value="", selected=True)  # no profile, as printed
        assert page.find("option", value="a4_2x7", selected=True)
        assert page.find("input", name="copies", value="3")
        assert page.find("input", name="start_position", value="5")


class TestTickedRows:
    def test_ticks_on_two_pages_print_exactly_those_lots(self, site, browser):
        first, second = lot_ids(site, 2), lot_ids(site, 1, offset=60)
        answer = browser.post(
            "/nursery/potting-lots/selection",
            data={"action": "tick", "lot_id": [str(i) for i in first]},
            headers={"Accept": "application/json"},
        )
        assert answer.status_code == 200 and answer.json["count"] == 2
        page = page_of(browser.get("/nursery/potting-lots?page=2"))
        primary = button(page, data_print_ticked=True)
        assert page.text(primary) == "Print 2 ticked lots (2 labels)"
        assert "primary" in primary["attrs"]["class"]
        filtered = button(page, data_print_filtered=True)
        assert page.text(filtered) == "Print all 120 lots (120 labels)"
        assert "primary" not in filtered["attrs"].get("class", "")
        # Page 2's form sends its own rows: one ticked there
        page_ids = lot_ids(site, 50, offset=50)
        response = browser.post(
            "/nursery/potting-lots/print-ticked",
            data={"lot_id": [str(second[0])], "page_id": [str(i) for i in page_ids], "copies": "3"},
        )
        assert response.status_code == 303
        job = last_job(site)
        assert sorted(job.params["lot_ids"]) == sorted(first + second)
        assert job.progress_total == 9
        # The ticks are spent
        page = page_of(browser.get("/nursery/potting-lots"))
        assert not page.find("input", name="lot_id", checked=True)

    def test_ticks_come_back_on_their_page(self, site, browser):
        ids = lot_ids(site, 3)
        browser.post("/nursery/potting-lots/selection", data={"action": "tick", "lot_id": ids})
        page = page_of(browser.get("/nursery/potting-lots"))
        checked = {b["attrs"]["value"] for b in page.find("input", name="lot_id", checked=True)}
        assert checked == {str(i) for i in ids}

    def test_select_all_matching_then_untick_one(self, site, browser):
        browser.post("/nursery/potting-lots/selection", data={"action": "all", "lot_number": "P"})
        one = lot_ids(site, 1, offset=70)
        answer = browser.post(
            "/nursery/potting-lots/selection",
            data={"action": "untick", "lot_id": one},
            headers={"Accept": "application/json"},
        )
        assert answer.json == {"count": 119, "every": True}
        page = page_of(browser.get("/nursery/potting-lots?page=2"))
        assert len(page.find("input", name="lot_id", checked=True)) == 49
        assert page.text(button(page, data_print_ticked=True)) == (
            "Print 119 ticked lots (119 labels)"
        )
        browser.post("/nursery/potting-lots/print-ticked", data={"copies": "1"})
        job = last_job(site)
        assert len(job.params["lot_ids"]) == 119 and one[0] not in job.params["lot_ids"]

    def test_more_ticks_than_the_session_keeps_are_refused_with_the_way_out(self, site, browser):
        from webapp.nursery.selection import MAX_TICKED

        answer = browser.post(
            "/nursery/potting-lots/selection",
            data={"action": "tick", "lot_id": [str(i) for i in range(1, MAX_TICKED + 2)]},
            headers={"Accept": "application/json"},
        )
        assert answer.status_code == 422 and answer.json["count"] == 0
        assert "tick all matching lots" in answer.json["error"]

    def test_clearing_the_ticks(self, site, browser):
        browser.post("/nursery/potting-lots/selection", data={"action": "tick", "lot_id": "1"})
        browser.post("/nursery/potting-lots/selection", data={"action": "clear"})
        page = page_of(browser.get("/nursery/potting-lots"))
        assert "data-empty" in button(page, data_print_ticked=True)["attrs"]

    def test_printing_ticks_without_any_is_refused(self, site, browser):
        response = browser.post("/nursery/potting-lots/print-ticked", data={"copies": "1"})
        assert response.status_code == 303
        with site.app_context():
            assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 0


class TestLimitsAndPreview:
    def test_the_form_shows_the_limit_and_its_copies_maximum(self, site, browser):
        page = page_of(browser.get("/nursery/potting-lots"))
        copies = page.find("input", name="copies")[0]
        assert copies["attrs"]["max"] == "100"
        assert "50,000 labels" in page.text(page.find(id="print-limits")[0])
        assert page.find(id="print-over", hidden=True)

    def test_an_over_limit_count_is_said_before_the_post(self, app, client, auth):
        from webapp.nursery.demo import seed_lots

        with app.app_context():
            add_user()
            seed_lots(30)
        app.config["MAX_LABELS"] = 50
        auth.login()
        client.post("/nursery/potting-lots/print", data={"copies": "2"})  # refused: 60 > 50
        page = page_of(client.get("/nursery/potting-lots"))
        over = page.find(id="print-over")[0]
        assert "hidden" not in over["attrs"] and "60 labels" in page.text(over)
        assert "disabled" in button(page, data_print_filtered=True)["attrs"]

    def test_the_sheet_preview_hatches_the_skipped_positions(self, site, browser):
        response = browser.get(
            "/nursery/potting-lots/sheet.png?layout=a4_3x8&start_position=5&copies=1"
        )
        assert response.status_code == 200 and response.mimetype == "image/png"
        image = Image.open(io.BytesIO(response.data)).convert("RGB")
        w, h = image.size
        skipped = image.getpixel((int(w * 0.5), int(h * 0.07)))  # position 2: hatched grey
        printed = image.getpixel((int(w * 0.97), int(h * 0.2)))  # position 6: white paper
        assert skipped != (255, 255, 255) and printed == (255, 255, 255)

    def test_the_preview_of_the_ticked_lots(self, site, browser):
        browser.post("/nursery/potting-lots/selection", data={"action": "tick", "lot_id": "1"})
        ok = browser.get("/nursery/potting-lots/sheet.png?layout=a4_2x7&ticked=1")
        assert ok.status_code == 200
        assert browser.get("/nursery/potting-lots/sheet.png?layout=nope").status_code == 204


class TestJobPageAndUrls:
    def test_empty_filter_parameters_are_dropped(self, site, browser):
        response = browser.get("/nursery/potting-lots?q=&lot_number=P&week=&page=2")
        assert response.status_code == 302
        assert response.headers["Location"] == "/nursery/potting-lots?lot_number=P&page=2"

    def test_favicon_ico_is_answered(self, site, client):
        answer = client.get("/favicon.ico")
        assert answer.status_code == 200 and answer.mimetype == "image/svg+xml"
        answer.close()

    def test_a_batch_with_every_label_drawn_is_merging_without_an_eta(self, site, browser):
        with site.app_context():
            job_id = job_in("running", lot_ids=[1])
            job = db.session.get(Job, job_id)
            job.progress_total = job.progress_done = 1000
            job.chunks_total = job.chunks_done = 11
            job.step_code, job.step_params = "rendering_parts", {"parts": 11}
            job.started_at = utcnow() - timedelta(seconds=30)
            db.session.commit()
        page = page_of(browser.get(f"/jobs/{job_id}"))
        assert page.text(page.find("span", class_="step")[0]) == "Merging 11 parts"
        assert not page.find("span", class_="eta")

    def test_the_eta_counts_seconds_near_the_end(self, site, browser):
        from webapp.templating import duration

        with site.test_request_context():
            assert duration(3) == "about 3 seconds" and duration(1) == "about 1 second"
            assert duration(42) == "about 40 seconds"

    def test_started_shows_the_date_when_not_today(self, site, browser):
        with site.app_context():
            job_id = job_in("done", lot_ids=[1])
            job = db.session.get(Job, job_id)
            job.created_at = utcnow() - timedelta(days=3)
            db.session.commit()
            day = (utcnow() - timedelta(days=3)).date()
        text = browser.get(f"/jobs/{job_id}").get_data(as_text=True)
        assert "Started" in text and str(day.year) in text.split("Started", 1)[1][:40]


class TestProfileFormPreview:
    def test_the_sizes_being_typed_are_drawn_or_refused(self, site, browser):
        sizes = {k: v for k, v in SHEET.items() if k != "name"}
        ok = browser.get("/nursery/potting-lots/sheet.png", query_string=sizes)
        assert ok.status_code == 200 and ok.mimetype == "image/png"
        too_wide = browser.get(
            "/nursery/potting-lots/sheet.png", query_string={**sizes, "label_w": "80"}
        )
        assert too_wide.status_code == 204
