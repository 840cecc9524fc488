"""The potting-lot table as label software works (issue 11), in real Chromium against gunicorn,
the Dramatiq workers and Redis: ticked rows are what the main button prints, ticks survive
paging, a printer profile is kept across a reload and after a refused print, the sheet preview
shows the skipped positions, the counts follow the copies, and the offline banner goes when
the network is back on a page that does not poll. Screenshots at desk (1280 × 800) and tablet
(820 × 1180) size go to PRESSROOM_SHOTS."""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from PIL import Image

from tests.browser.pages import log_in, shot
from tests.services import Stack
from webapp.extensions import db
from webapp.models import PottingLot

pytestmark = pytest.mark.browser

# 120 lots: three pages of 50. One batch holds 250 labels here, so 120 lots × 3 copies is over.
STACK = {"processes": 1, "lots": 120, "env": {"MAX_LABELS": "250"}}
JOB_PAGE = re.compile(r"/jobs/([A-Za-z0-9_-]+)$")
DESK = {"width": 1280, "height": 800}
TABLET = {"width": 820, "height": 1180}


def table(page: Any, path: str = "/nursery/potting-lots") -> None:
    page.goto(path)
    page.locator("#print-form").wait_for()


def tick(page: Any, row: int) -> str:
    """Tick the row (0-based) and wait for the server to keep it; → the lot's id."""
    box = page.locator("input[type=checkbox][name=lot_id]").nth(row)
    with page.expect_response(lambda r: r.url.endswith("/potting-lots/selection") and r.ok):
        box.check()
    return box.get_attribute("value")


def both_sizes(page: Any, name: str) -> None:
    for size, label in ((DESK, "desk"), (TABLET, "tablet")):
        page.set_viewport_size(size)
        shot(page, f"{name}-{label}")
    page.set_viewport_size(DESK)


def logged_in(page: Any) -> None:
    page.set_viewport_size(DESK)
    page.goto("/login")
    log_in(page)


class TestTickedRows:
    def test_ticks_on_two_pages_are_what_the_main_button_prints(self, stack: Stack, page, app_ctx):
        from playwright.sync_api import expect

        logged_in(page)
        table(page)
        primary = page.locator("button.primary.big")
        expect(primary).to_have_text(re.compile(r"^\s*Print all 120 lots\s+\(120 labels\)\s*$"))

        # Two rows ticked on page 1: the main button prints those two
        ids = [tick(page, 0), tick(page, 3)]
        expect(primary).to_have_attribute("id", "print-ticked")
        expect(primary).to_have_text(re.compile(r"Print 2 ticked lots\s+\(2 labels\)"))
        # … and the filtered print stays one click away
        expect(page.locator("#print-filtered")).to_be_visible()
        expect(page.locator("#print-filtered")).to_have_text(re.compile(r"Print all 120 lots"))

        # One more on page 2; back on page 1, the first two are still ticked
        page.locator("a[rel=next]").click()
        page.wait_for_url(re.compile(r"page=2"))
        ids.append(tick(page, 5))
        expect(primary).to_have_text(re.compile(r"Print 3 ticked lots\s+\(3 labels\)"))
        page.locator("a[rel=prev]").click()
        page.wait_for_url(re.compile(r"page=1"))
        checked = page.locator("input[name=lot_id]:checked")
        expect(checked).to_have_count(2)
        assert sorted(checked.evaluate_all("(bs) => bs.map((b) => b.value)")) == sorted(ids[:2])

        # Copies follow at once, in both counts
        page.locator("#p-copies").fill("2")
        expect(primary).to_have_text(re.compile(r"Print 3 ticked lots\s+\(6 labels\)"))
        expect(page.locator("#print-filtered")).to_contain_text("(240 labels)")
        both_sizes(page, "sel-1-ticked")

        # Then the job prints exactly those three lots, twice each
        primary.click()
        page.wait_for_url(JOB_PAGE)
        job_id = JOB_PAGE.search(page.url).group(1)
        job = stack.wait_status(job_id, "done")
        assert sorted(job.params["lot_ids"]) == sorted(int(i) for i in ids)
        assert job.progress_total == 6
        link = page.locator("a.download")
        expect(link).to_be_visible(timeout=30_000)
        with page.expect_download() as info:
            link.click()
        with pikepdf.open(Path(info.value.path())) as pdf:
            assert len(pdf.pages) == 6  # a roll: one label a page
        # The ticks are spent once printed
        table(page)
        expect(page.locator("input[name=lot_id]:checked")).to_have_count(0)
        expect(page.locator("button.primary.big")).to_have_attribute("id", "print-filtered")

    def test_every_matching_lot_across_pages_then_one_unticked(self, stack, page, app_ctx):
        from playwright.sync_api import expect

        logged_in(page)
        table(page, "/nursery/potting-lots?lot_number=P")
        with page.expect_navigation():
            page.locator("[data-select-every]").click()
        expect(page.locator("input[name=lot_id]:checked")).to_have_count(50)
        with page.expect_response(lambda r: r.url.endswith("/selection")):
            page.locator("input[name=lot_id]").nth(1).uncheck()
        expect(page.locator("button.primary.big")).to_have_text(
            re.compile(r"Print 119 ticked lots\s+\(119 labels\)")
        )
        page.locator("a[rel=next]").click()
        expect(page.locator("input[name=lot_id]:checked")).to_have_count(50)
        shot(page, "sel-2-every")
        with page.expect_navigation():
            page.locator("[data-clear-ticks]").click()
        expect(page.locator("input[name=lot_id]:checked")).to_have_count(0)


class TestLimits:
    def test_the_counts_and_the_limit_follow_the_copies(self, stack, page, app_ctx):
        from playwright.sync_api import expect

        logged_in(page)
        table(page)
        filtered = page.locator("#print-filtered")
        expect(page.locator("#print-limits")).to_contain_text("250 labels")
        page.locator("#p-copies").fill("200")
        # The count is the one typed, and both limits say so before anything is sent
        expect(filtered).to_contain_text("(24,000 labels)")
        expect(page.locator("#p-copies-over")).to_be_visible()
        expect(page.locator("#p-copies-over")).to_have_text("Enter 100 or less.")
        expect(page.locator("#print-over")).to_be_visible()
        expect(page.locator("#print-over")).to_contain_text("24,000 labels")
        expect(filtered).to_be_disabled()
        both_sizes(page, "sel-3-over-limit")
        page.locator("#p-copies").fill("2")
        expect(filtered).to_contain_text("(240 labels)")
        expect(page.locator("#print-over")).to_be_hidden()
        expect(page.locator("#p-copies-over")).to_be_hidden()
        expect(filtered).to_be_enabled()

    def test_a_filter_leaves_no_empty_parameters_in_the_address(self, stack, page, app_ctx):
        logged_in(page)
        table(page)
        page.locator("#f-lot").fill("P")
        with page.expect_navigation():
            page.locator("#f-lot").press("Enter")
        assert page.url.endswith("/nursery/potting-lots?lot_number=P"), page.url


class TestProfiles:
    def test_a_profile_is_kept_after_an_error_across_a_reload_and_after_a_refused_print(
        self, stack: Stack, page, app_ctx
    ):
        from playwright.sync_api import expect

        logged_in(page)
        page.goto("/nursery/printer-profiles/new")
        # The sheet's sizes appear once "my own sheet" is chosen
        expect(page.locator("#pp-cols")).to_be_hidden()
        page.locator("#pp-layout").select_option("custom_sheet")
        expect(page.locator("#pp-cols")).to_be_visible()
        page.locator("#pp-name").fill("Office A4")
        for field, value in (("label_w", "80"), ("label_h", "30"), ("cols", "3"), ("rows", "9")):
            page.locator(f"#pp-{field}").fill(value)
        page.locator("#pp-start_position").fill("4")
        page.locator("#pp-copies").fill("2")
        page.locator("#pp-offset_x").fill("1.5")
        page.get_by_role("button", name="Save profile").click()

        # Refused (3 × 80 mm is wider than A4): everything typed is still there
        expect(page.locator("#err-cols")).to_contain_text("past the sheet's right edge")
        expect(page.locator("#pp-label_w")).to_have_value("80")
        expect(page.locator("#pp-name")).to_have_value("Office A4")
        expect(page.locator("#pp-layout")).to_have_value("custom_sheet")
        expect(page.locator("#pp-offset_x")).to_have_value("1.5")
        both_sizes(page, "sel-4-profile-error")
        expect(page.locator("#profile-preview")).to_be_hidden()  # nothing drawn that cannot print
        page.locator("#pp-label_w").fill("60")
        # The sheet is drawn as the sizes are typed
        expect(page.locator("#profile-preview")).to_be_visible()
        expect(page.locator("#profile-preview")).to_have_attribute("src", re.compile(r"label_w=60"))
        page.wait_for_function(
            "() => { const i = document.getElementById('profile-preview');"
            " return i.complete && i.naturalWidth > 0 && !i.classList.contains('loading'); }"
        )
        both_sizes(page, "sel-4b-profile-preview")
        page.get_by_role("button", name="Save profile").click()
        page.wait_for_url(re.compile(r"/nursery/potting-lots$"))

        def kept() -> None:
            expect(page.locator("#p-profile option:checked")).to_have_text("Office A4")
            expect(page.locator("#p-layout")).to_have_value("custom")
            expect(page.locator("#p-layout option:checked")).to_contain_text(
                "3 × 9 labels of 60 × 30"
            )
            expect(page.locator("#p-start")).to_have_value("4")
            expect(page.locator("#p-copies")).to_have_value("2")
            expect(page.locator("#p-ox")).to_have_value("1.5")

        kept()
        page.reload()
        kept()
        both_sizes(page, "sel-5-profile")

        # Ten more lots arrive after the page was drawn: 130 × 2 copies is over the 250 the
        # page counted with, so the server refuses the print, and the form comes back as sent
        with stack.context():
            for n in range(10):
                db.session.add(
                    PottingLot(
                        lot_number=f"Z{n:04d}",
                        plant_name="Late arrival",
                        pot_size="P9",
                        quantity=10,
                        potting_date=date(2026, 11, 30),
                        location="Kas 9",
                    )
                )
            db.session.commit()
        page.locator("#print-filtered").click()
        expect(page.locator(".flash-error")).to_contain_text("250")
        kept()
        shot(page, "sel-6-refused")

        # Choosing no profile and back restores the profile's values
        page.locator("#p-profile").select_option("")
        expect(page.locator("#p-layout")).not_to_have_value("custom")
        page.locator("#p-profile").select_option(label="Office A4")
        kept()

    def test_the_sheet_preview_shows_the_start_and_the_skipped_positions(
        self, stack, page, app_ctx
    ):
        from playwright.sync_api import expect

        logged_in(page)
        table(page)
        page.locator("#p-profile").select_option("")
        page.locator("#p-layout").select_option("a4_3x8")
        page.locator("#p-start").fill("5")
        preview = page.locator("#label-preview")
        expect(preview).to_have_attribute("src", re.compile(r"sheet\.png\?.*start_position=5"))
        page.wait_for_function(
            "() => { const i = document.getElementById('label-preview');"
            " return i.complete && i.naturalWidth > 0 && !i.classList.contains('loading'); }"
        )
        expect(page.locator(".preview figcaption")).to_contain_text("hatched positions")
        both_sizes(page, "sel-7-sheet-preview")
        image = page.request.get(preview.get_attribute("src"))
        assert image.ok and image.headers["content-type"] == "image/png"
        sheet = Image.open(io.BytesIO(image.body())).convert("RGB")
        w, h = sheet.size
        # Positions 1-4 (row 1, and row 2's first) are hatched grey, position 6 is paper
        assert sheet.getpixel((int(w * 0.5), int(h * 0.07))) != (255, 255, 255)
        assert sheet.getpixel((int(w * 0.05), int(h * 0.2))) != (255, 255, 255)
        assert sheet.getpixel((int(w * 0.97), int(h * 0.2))) == (255, 255, 255)


class TestConnection:
    def test_the_offline_banner_goes_when_the_network_is_back_on_a_page_that_does_not_poll(
        self, stack, context, page, app_ctx
    ):
        from playwright.sync_api import expect

        logged_in(page)
        page.goto("/nursery/printer-profiles")
        assert page.locator("[hx-trigger]").count() == 0  # nothing here polls
        banner = page.locator("#net-status")
        context.set_offline(True)
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Connection lost")
        shot(page, "sel-8-offline")
        context.set_offline(False)
        expect(banner).to_be_hidden()

    def test_a_request_of_the_page_answered_clears_the_banner(self, stack, context, page, app_ctx):
        from playwright.sync_api import expect

        logged_in(page)
        table(page)
        banner = page.locator("#net-status")
        context.set_offline(True)
        expect(banner).to_be_visible()
        context.set_offline(False)
        expect(banner).to_be_hidden()
        # A tick sent while the server is unreachable shows the banner; the next one answered
        # clears it
        page.route("**/potting-lots/selection", lambda route: route.abort())
        page.locator("input[name=lot_id]").nth(0).check()
        expect(banner).to_be_visible()
        page.unroute("**/potting-lots/selection")
        with page.expect_response(lambda r: r.url.endswith("/selection") and r.ok):
            page.locator("input[name=lot_id]").nth(1).check()
        expect(banner).to_be_hidden()
