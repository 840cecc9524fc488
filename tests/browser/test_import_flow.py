"""The potting-lot import in real Chromium (issue 11 item 5): choose a Dutch spreadsheet, see the
columns it proposes, a preview and the dry run, fix a column after an error without choosing the
file again, and import; a file over the limit is refused before it is sent. At desk and tablet
sizes, with screenshots (tests/browser/pages.py SHOTS)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.browser.conftest import REPORT_VIOLATIONS
from tests.browser.pages import log_in, shot
from tests.services import Stack
from webapp.extensions import db
from webapp.models import PottingLot

pytestmark = pytest.mark.browser

STACK = {"processes": 1, "lots": 3}
DATABASES = ("sqlite",)  # the pages are the subject; the commit's SQL is in tests/unit
SIZES = {"desk": {"width": 1280, "height": 900}, "tablet": {"width": 820, "height": 1180}}

# A Dutch Excel's "CSV (puntkomma gescheiden)": the location column is named "Kas/vak", which
# is nobody's name for it: the user picks it.
DUTCH = (
    "Lotnummer;Plantnaam;Potmaat;Aantal;Potdatum;Kas/vak;Klant\r\n"
    "BR-{size}-1;Hosta 'Frances Williams';P9;1.200;23-11-2026;Kas 1 – tafel 04;Kwekerij Van Dijk\r\n"
    "BR-{size}-2;Buxus sempervirens;P10,5;48;01-02-2026;Kas 2;\r\n"
    "BR-{size}-3;Lavandula 'Hidcote';P9;12.500;2026-03-07;Buitenveld A;Tuincentrum 't Hofje\r\n"
)


def lots_named(stack: Stack, prefix: str) -> dict[str, PottingLot]:
    with stack.context():
        found = db.session.scalars(
            sa.select(PottingLot).where(PottingLot.lot_number.startswith(prefix))
        ).all()
        for lot in found:
            db.session.expunge(lot)
        return {lot.lot_number: lot for lot in found}


@pytest.mark.parametrize("size", list(SIZES))
def test_upload_map_preview_dry_run_and_commit(
    stack: Stack, browser: Any, console: Any, tmp_path: Path, size: str
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(
        base_url=stack.base_url, viewport=SIZES[size], locale="en-GB", accept_downloads=True
    )
    context.set_default_timeout(15_000)
    context.add_init_script(REPORT_VIOLATIONS)
    context.on("console", console.on_console)
    context.on("weberror", console.on_error)
    try:
        page = context.new_page()
        page.goto("/login")
        log_in(page)
        file = tmp_path / "partijen.csv"
        file.write_text(DUTCH.format(size=size), encoding="utf-8")

        # Given the upload page, with its templates to download
        page.goto("/nursery/potting-lots/import")
        expect(page.get_by_role("heading", name="Import potting lots")).to_be_visible()
        with page.expect_download() as download:
            page.get_by_role("link", name="Excel (.xlsx)").click()
        assert download.value.suggested_filename.endswith(".xlsx")
        shot(page, f"import-1-upload-{size}")

        # When the user chooses the Dutch file and continues (keyboard: Enter on the button)
        page.get_by_label("CSV or Excel file").set_input_files(str(file))
        page.get_by_role("button", name="Continue").focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")

        # Then the columns are proposed by their Dutch names, except the one nobody names so
        expect(page).to_have_url(re.compile(r"/nursery/potting-lots/import/[A-Za-z0-9_-]{32}$"))
        expect(page.get_by_label("Lot number")).to_have_value("0")
        expect(page.get_by_label("Quantity")).to_have_value("3")
        expect(page.get_by_label("Location")).to_have_value("")
        # … the dry run counts the rows and names the error beside the field, and importing waits
        errors = page.locator("#import-errors")
        expect(errors).to_be_focused()
        expect(errors).to_contain_text("required: choose the file's column for it")
        expect(page.locator("#col_location-error")).to_be_visible()
        expect(page.locator("[data-count=error]")).to_have_text("0")
        expect(page.get_by_role("button", name="Import", exact=True)).to_be_disabled()
        # … and the preview shows the values as they will be imported
        preview = page.locator(".preview-table")
        expect(preview).to_contain_text("1,200")
        expect(preview).to_contain_text("Nov 23, 2026")
        expect(preview).to_contain_text("Feb 1, 2026")  # day first, as the column's 23-11 shows
        shot(page, f"import-2-columns-error-{size}")

        # The file is still chosen after the error: the user picks the column, with the keyboard
        expect(page.locator("[data-import-file]")).to_have_text("partijen.csv")
        select = page.get_by_label("Location")
        select.focus()
        select.select_option(label="Kas/vak")
        expect(page.locator("#sample-location")).to_have_text("Kas 1 – tafel 04")
        expect(page.locator("[data-mapping-changed]")).to_be_visible()
        page.get_by_role("button", name="Check again").click()

        # The dry run now finds three new lots and nothing wrong
        expect(page.locator("[data-count=new]")).to_have_text("3")
        expect(page.locator("#import-errors")).to_have_count(0)
        expect(page.locator("#col_location-error")).to_have_count(0)
        commit = page.get_by_role("button", name="Import 3 rows")
        expect(commit).to_be_enabled()
        shot(page, f"import-3-dry-run-{size}")
        assert lots_named(stack, f"BR-{size}-") == {}  # a dry run writes nothing

        # Importing lands on the table with the counts, every value as the file meant it
        commit.click()
        page.wait_for_url(re.compile(r"/nursery/potting-lots(\?.*)?$"))
        expect(page.locator(".flash-success")).to_contain_text("3 new, 0 updated, 0 unchanged")
        shot(page, f"import-4-done-{size}")
        lots = lots_named(stack, f"BR-{size}-")
        assert lots[f"BR-{size}-1"].quantity == 1200
        assert lots[f"BR-{size}-1"].location == "Kas 1 – tafel 04"
        assert lots[f"BR-{size}-3"].quantity == 12500
        assert str(lots[f"BR-{size}-2"].potting_date) == "2026-02-01"
        assert lots[f"BR-{size}-2"].customer is None

        # A file over the limit is refused before it is sent, with the limit in words
        big = tmp_path / "big.csv"
        big.write_bytes(b"a;b\n" + b"1;2\n" * (3 * 1024 * 1024 // 4))
        page.goto("/nursery/potting-lots/import")
        page.get_by_label("CSV or Excel file").set_input_files(str(big))
        page.get_by_role("button", name="Continue").click()
        expect(page.locator("#file-error")).to_contain_text("the limit is 2 MB")
        expect(page.get_by_label("CSV or Excel file")).to_be_focused()
        expect(page).to_have_url(re.compile(r"/nursery/potting-lots/import$"))
        expect(page.get_by_role("button", name="Continue")).to_be_enabled()
        shot(page, f"import-5-too-large-{size}")

        # A file with bad cells: each error beside its cell, reached from the summary by keyboard
        bad = tmp_path / "fouten.csv"
        bad.write_text(
            DUTCH.format(size=f"bad-{size}")
            .replace("12.500", "12,5")
            .replace("01-02-2026", "31-02-2026")
            .replace("Kas/vak", "Locatie"),
            encoding="cp1252",
        )
        page.get_by_label("CSV or Excel file").set_input_files(str(bad))
        with page.expect_navigation():
            page.get_by_role("button", name="Continue").click()
        expect(page.locator("[data-count=error]")).to_have_text("2")
        cell = page.locator("#row-4-quantity")
        expect(cell).to_contain_text("12,5 is not a whole number of 0 or more")
        expect(page.locator("#row-3-potting_date")).to_contain_text("31-02-2026 is not a date")
        expect(page.locator("#import-errors")).to_be_focused()
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")  # the second error's link: row 4, quantity
        expect(page.locator("#import-errors a").nth(1)).to_be_focused()
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"#row-4-quantity$"))
        expect(page.get_by_text("CSV separated by ';', Windows-1252")).to_be_visible()
        shot(page, f"import-6-cell-errors-{size}")
        assert lots_named(stack, f"BR-bad-{size}-") == {}
    finally:
        context.close()
    problems = console.problems()
    assert not problems, problems
