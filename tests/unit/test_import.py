"""Potting-lot import (DESIGN §5, issue 11 item 5): CSV or XLSX, columns found by their English,
Dutch or Spanish names (or chosen), dates and numbers in the user's locale as well as ISO, a dry
run with counts before the commit, the file kept on the server between the steps, upsert by lot
number in one transaction, all rows or none; from the CLI and from the browser, alike."""

from __future__ import annotations

import io
import os
import re
import stat
import time
from datetime import date, datetime
from html import unescape
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import add_user
from webapp.extensions import db
from webapp.models import PottingLot
from webapp.nursery import importer
from webapp.nursery.importer import ImportFailed, Options

HEADER = "lot_number,plant_name,pot_size,quantity,potting_date,location,customer"
GOOD = (
    "\n".join(
        [
            HEADER,
            "P2648-001,Hydrangea macrophylla 'Bodensee',P9,120,2026-11-23,Kas 1 – tafel 04,Tuincentrum De Oosteinde",
            "P2648-002,Rosa 'Königin von Dänemark',12,48,2026-11-24,Buitenveld A,",
            "\"P2648-003\",\"Euonymus fortunei 'Emerald ''n'' Gold', bont\",C2,36,2026-11-25,Schaduwhal,\"Gärtnerei Müller & Söhne\"",
        ]
    )
    + "\n"
)
# What a Dutch Excel saves as "CSV (puntkomma gescheiden)": ';', Dutch names, 1.200, 23-11-2026.
DUTCH = (
    "Lotnummer;Plantnaam;Potmaat;Aantal;Potdatum;Locatie;Klant\r\n"
    "NL-001;Hosta 'Frances Williams';P9;1.200;23-11-2026;Kas 1 – tafel 04;Kwekerij Van Dijk\r\n"
    "NL-002;Buxus sempervirens;P10,5;48;01-02-2026;Kas 2;\r\n"
    "NL-003;Lavandula 'Hidcote';P9;12.500;2026-03-07;Buitenveld A;Tuincentrum 't Hofje\r\n"
)


def text_of(html: str) -> str:
    """A page's text, tags dropped, spaces squeezed: what a reader sees."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def snapshot(app) -> list[tuple]:
    with app.app_context():
        return [
            lot.label_fields()
            for lot in db.session.scalars(sa.select(PottingLot).order_by(PottingLot.lot_number))
        ]


def lot(app, number: str) -> PottingLot:
    with app.app_context():
        found = db.session.scalars(
            sa.select(PottingLot).where(PottingLot.lot_number == number)
        ).one()
        db.session.expunge(found)
        return found


def xlsx(rows: list[list[object]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def log_in(app):
    with app.app_context():
        add_user()
    client = app.test_client()
    client.post("/login", data={"email": "staff@example.com", "password": "pw-staff"})
    return client


def upload(client, data: bytes | str, name: str = "lots.csv"):
    raw = data.encode() if isinstance(data, str) else data
    return client.post(
        "/nursery/potting-lots/import",
        data={"file": (io.BytesIO(raw), name)},
        content_type="multipart/form-data",
    )


def step_url(response) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    location = response.headers["Location"]
    assert re.search(r"/nursery/potting-lots/import/[A-Za-z0-9_-]{32}$", location), location
    return location


def xlsx_with_broken_xml(member: str) -> bytes:
    """A real workbook (openpyxl's) whose `member` is cut off half way: a valid zip, bad XML."""
    import io
    import zipfile

    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["lot_number", "plant_name"])
    book.active.append(["L-1", "Buxus"])
    source = io.BytesIO()
    book.save(source)
    out = io.BytesIO()
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data[: len(data) // 2] if item.filename == member else data)
    return out.getvalue()


class Importer:
    """Runs an import through the CLI or the browser's steps; answers (ok, message text)."""

    def __init__(self, app, how: str, tmp_path: Path) -> None:
        self.app, self.how, self.tmp_path = app, how, tmp_path
        if how == "form":
            self.client = log_in(app)

    def __call__(self, data: bytes | str, name: str = "lots.csv") -> tuple[bool, str]:
        raw = data.encode() if isinstance(data, str) else data
        if self.how == "cli":
            path = self.tmp_path / name
            path.write_bytes(raw)
            result = self.app.test_cli_runner().invoke(args=["potting-lots", "import", str(path)])
            return result.exit_code == 0, result.output
        response = upload(self.client, raw, name)
        if response.status_code != 303:  # the file itself could not be read
            assert response.status_code in (400, 413, 422), response.status_code
            return False, text_of(response.get_data(as_text=True))
        step = response.headers["Location"]
        assert self.client.get(step).status_code == 200
        response = self.client.post(step, data={}, follow_redirects=True)
        text = text_of(response.get_data(as_text=True))
        if response.status_code == 422:
            return False, text
        assert response.status_code == 200, text
        return "Imported" in text, text


@pytest.fixture(params=["cli", "form"])
def do_import(request, app, tmp_path) -> Importer:
    return Importer(app, request.param, tmp_path)


class TestGoodFiles:
    """Every row lands, typed; customer may be empty; pot_size is free text."""

    def test_a_comma_separated_utf8_file_is_imported(self, app, do_import):
        ok, message = do_import(GOOD)
        assert ok, message
        assert "3" in message and "3 new" in message
        first = lot(app, "P2648-001")
        assert first.quantity == 120 and first.potting_date == date(2026, 11, 23)
        assert first.location == "Kas 1 – tafel 04" and first.pot_size == "P9"
        second = lot(app, "P2648-002")
        assert second.pot_size == "12" and second.customer is None
        assert second.plant_name == "Rosa 'Königin von Dänemark'"
        third = lot(app, "P2648-003")
        assert third.plant_name == "Euonymus fortunei 'Emerald ''n'' Gold', bont"
        assert third.customer == "Gärtnerei Müller & Söhne"

    def test_a_dutch_file_with_semicolons_1200_and_23_11_2026_is_read_right(self, app, do_import):
        ok, message = do_import(DUTCH)
        assert ok, message
        first = lot(app, "NL-001")
        assert first.quantity == 1200 and first.potting_date == date(2026, 11, 23)
        assert (
            first.plant_name == "Hosta 'Frances Williams'" and first.customer == "Kwekerij Van Dijk"
        )
        second = lot(app, "NL-002")
        # the column has 23-11-2026: day first for the whole column, so 01-02 is 1 February
        assert second.potting_date == date(2026, 2, 1) and second.pot_size == "P10,5"
        third = lot(app, "NL-003")
        assert third.quantity == 12500 and third.potting_date == date(2026, 3, 7)
        assert third.customer == "Tuincentrum 't Hofje"

    def test_an_excel_workbook_is_imported(self, app, do_import):
        data = xlsx(
            [
                ["Partij", "Soort", "Potmaat", "Hoeveelheid", "Datum", "Plaats", "Klant"],
                ["X-1", "Salvia", 17, 1200, datetime(2026, 11, 23), "Kas 3", None],
                ["X-2", "Sedum", "P9", "1.200", "23-11-2026", "Kas 4", "Hovenier Ünal"],
                [1003, "Buxus", "P9", 24.0, date(2026, 1, 5), "Kas 5", ""],
            ]
        )
        ok, message = do_import(data, "lots.xlsx")
        assert ok, message
        first = lot(app, "X-1")
        assert first.quantity == 1200 and first.potting_date == date(2026, 11, 23)
        assert first.pot_size == "17" and first.customer is None
        second = lot(app, "X-2")
        assert (second.quantity, second.potting_date) == (1200, date(2026, 11, 23))
        assert second.customer == "Hovenier Ünal"
        third = lot(app, "1003")  # a number cell as text, without ".0"
        assert third.quantity == 24 and third.potting_date == date(2026, 1, 5)

    def test_a_windows_1252_file_is_read(self, app, do_import):
        data = (HEADER + "\nL-1,Rosa 'Königin',P9,5,2026-11-23,Kas 1,Gärtnerei Müller\n").encode(
            "cp1252"
        )
        ok, message = do_import(data)
        assert ok, message
        found = lot(app, "L-1")
        assert found.plant_name == "Rosa 'Königin'" and found.customer == "Gärtnerei Müller"

    @pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["no-bom", "bom"])
    @pytest.mark.parametrize("separator", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
    @pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
    def test_bom_separator_and_line_ends_as_spreadsheets_save_them(
        self, app, do_import, bom, separator, newline
    ):
        rows = [
            HEADER.replace(",", separator),
            separator.join(
                [
                    "A-1",
                    "Lavandula 'Hidcote'",
                    "P10,5" if separator != "," else "P10.5",
                    "24",
                    "2026-11-23",
                    "Kas 2",
                    "",
                ]
            ),
            separator.join(["A-2", "Salvia", "17", "60", "2026-11-24", "Kas 3", "Hovenier Ünal"]),
        ]
        ok, message = do_import(bom + newline.join(rows).encode() + newline.encode())
        assert ok, message
        assert lot(app, "A-1").lot_number == "A-1"  # the BOM is not part of the first column
        assert lot(app, "A-1").pot_size in ("P10,5", "P10.5")
        assert lot(app, "A-2").customer == "Hovenier Ünal"

    def test_the_header_may_be_in_any_order_and_case(self, app, do_import):
        data = (
            "Customer,LOT_NUMBER,plant_name,pot_size,quantity,potting_date,location\n"
            ",B-1,Buxus,P9,10,2026-01-05,Kas 1\n"
        )
        ok, message = do_import(data)
        assert ok, message
        assert lot(app, "B-1").plant_name == "Buxus"

    def test_import_upserts_by_lot_number(self, app, do_import):
        do_import(GOOD)
        before = lot(app, "P2648-001")
        changed = (
            GOOD.replace(",120,", ",240,")
            + "P2648-004,Sedum 'Herbstfreude',P9,24,2026-11-26,Kas 3,\n"
        )
        ok, message = do_import(changed)
        assert ok, message
        assert "1 new" in message and "1 updated" in message and "2 unchanged" in message
        after = lot(app, "P2648-001")
        assert after.id == before.id and after.quantity == 240  # the same row, updated in place
        assert len(snapshot(app)) == 4

    def test_importing_the_same_file_again_changes_nothing(self, app, do_import):
        ok, _message = do_import(DUTCH)
        assert ok
        before = {n: lot(app, n).updated_at for n in ("NL-001", "NL-002", "NL-003")}
        ok, message = do_import(DUTCH)
        assert ok, message
        assert "0 new" in message and "0 updated" in message and "3 unchanged" in message
        assert {n: lot(app, n).updated_at for n in before} == before  # not even touched

    def test_a_file_with_blank_lines_skips_them(self, app, do_import):
        ok, message = do_import(GOOD.replace("\nP2648-002", "\n\nP2648-002") + "\n\n")
        assert ok, message
        assert len(snapshot(app)) == 3

    def test_a_file_without_the_customer_column_keeps_the_customers(self, app, do_import):
        do_import(GOOD)
        without = "\n".join(line.rsplit(",", 1)[0] for line in GOOD.strip().split("\n")[:2])
        ok, message = do_import(without.replace(",120,", ",121,") + "\n")
        assert ok, message
        assert lot(app, "P2648-001").customer == "Tuincentrum De Oosteinde"
        assert lot(app, "P2648-001").quantity == 121


class TestBadFiles:
    """A bad row is reported with its row number and field, and nothing at all is imported."""

    @pytest.fixture
    def existing(self, app) -> list[tuple]:
        from webapp.nursery.demo import seed_lots

        with app.app_context():
            seed_lots(5)
        return snapshot(app)

    def test_a_bad_row_is_reported_with_its_row_and_the_table_is_unchanged(
        self, app, do_import, existing
    ):
        first_existing = existing[0][1]
        data = (
            "\n".join(
                [
                    HEADER,
                    f"{first_existing},Changed name,P9,1,2026-11-23,Kas 1,",  # would update a lot …
                    "N-1,New plant,P9,5,2026-11-23,Kas 1,",  # … and add one,
                    "N-2,Broken plant,P9,many,2026-11-23,Kas 1,",  # but row 4 is wrong
                ]
            )
            + "\n"
        )
        ok, message = do_import(data)
        assert not ok
        assert "row 4" in message.lower() and "Quantity" in message and "many" in message
        assert snapshot(app) == existing

    def test_every_bad_row_is_listed(self, app, do_import, existing):
        data = (
            "\n".join(
                [
                    HEADER,
                    "N-1,,P9,5,2026-11-23,Kas 1,",
                    "N-2,Plant,P9,5,31-02-2026,Kas 1,",
                    "N-3,Plant,P9,-1,2026-11-23,Kas 1,",
                    "N-1,Plant,P9,5,2026-11-23,Kas 1,",
                    "N-5,Plant,P9,12,5,2026-11-23,Kas 1,",  # one cell too many: the date is "5"
                ]
            )
            + "\n"
        )
        ok, message = do_import(data)
        assert not ok
        lower = message.lower()
        assert "row 2" in lower and "plant name" in lower and "required, but empty" in lower
        assert "row 3" in lower and "potting date" in lower and "31-02-2026" in lower
        assert "row 4" in lower and "-1" in lower and "not a whole number" in lower
        assert "row 5" in lower and "is on row 2 already" in lower  # duplicate of row 2
        assert "row 6" in lower
        assert snapshot(app) == existing

    def test_a_missing_column_is_reported_with_the_columns(self, app, do_import, existing):
        ok, message = do_import("lot_number,plant_name,quantity\nX-1,Buxus,3\n")
        assert not ok
        assert "Pot size" in message and "Potting date" in message and "Location" in message
        assert "choose the file's column" in message
        assert snapshot(app) == existing

    def test_an_undecodable_file_is_refused_clearly(self, app, do_import, existing):
        # neither UTF-8 (a lone continuation byte) nor Windows-1252 (0x81 is unassigned there)
        data = HEADER.encode() + b"\nL-1,Rosa \x81\x9d,P9,5,2026-11-23,Kas 1,\n"
        ok, message = do_import(data)
        assert not ok and "UTF-8" in message and "Windows-1252" in message
        assert snapshot(app) == existing

    @pytest.mark.parametrize(
        "data, words",
        [
            ("", "empty"),
            ("\n\n \n", "empty"),
            (HEADER + "\n", "no rows"),
            (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01", "not a CSV or Excel"),
            (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, ".xls"),
            (b"PK\x03\x04 this is no zip at all", "Excel file cannot be read"),
            (xlsx_with_broken_xml("xl/worksheets/sheet1.xml"), "Excel file cannot be read"),
            (xlsx_with_broken_xml("xl/workbook.xml"), "Excel file cannot be read"),
        ],
        ids=[
            "empty",
            "blank-lines",
            "header-only",
            "png",
            "xls",
            "broken-zip",
            "broken-sheet",
            "broken-book",
        ],
    )
    def test_a_file_that_is_no_table_is_refused_with_a_reason(
        self, app, do_import, existing, data, words
    ):
        ok, message = do_import(data)
        assert not ok and words in message
        assert snapshot(app) == existing

    def test_excel_files_are_parsed_through_defusedxml(self):
        from openpyxl.xml import DEFUSEDXML

        assert DEFUSEDXML  # openpyxl's guard against XML bombs in an uploaded .xlsx

    def test_a_value_longer_than_its_column_is_refused(self, app, do_import, existing):
        ok, message = do_import(HEADER + f"\nL-1,Buxus,{'P' * 21},5,2026-11-23,Kas 1,\n")
        assert not ok and "row 2" in message.lower() and "Pot size" in message
        assert "longer than 20 characters" in message
        assert snapshot(app) == existing

    def test_a_line_the_csv_module_cannot_read_is_reported_not_a_crash(
        self, app, do_import, existing
    ):
        huge = "x" * 140_000  # over the csv module's field size limit
        ok, message = do_import(HEADER + f'\nL-1,"{huge}",P9,5,2026-11-23,Kas 1,\n')
        assert not ok and "row 2" in message.lower() and "cannot be read" in message
        assert snapshot(app) == existing


class TestNumbers:
    """Quantities: one reading of '.' and ',' for the whole column (importer.read_whole_numbers)."""

    @pytest.mark.parametrize(
        "cells, locale, expected",
        [
            (["1200", "5"], "en", [1200, 5]),
            (["1.200", "5"], "nl", [1200, 5]),  # the example
            (["1.200", "5"], "en", [1200, 5]),  # a quantity is whole: '.' + 3 digits groups
            (["1,200", "5"], "nl", [1200, 5]),
            (["1.200", "1,5"], "nl", [1200, None]),  # ',' is the decimal mark: 1,5 is no count
            (["1.200", "2,000"], "en", [1200, 2000]),  # nothing says either is a decimal mark
            (["1.200,00", "1.200"], "en", [1200, 1200]),  # the column shows ',' as the decimal
            (["1,200.00", "1,200"], "nl", [1200, 1200]),  # … or '.'
            (["1.200.000", "3.000"], "en", [1200000, 3000]),
            (["12,5", "2.5"], "nl", [None, None]),  # contradicts itself: the locale, then whole?
            (["1 200", "1\u202f200", "1'200"], "en", [1200, 1200, 1200]),
            (["12.50"], "en", [None]),
            (["-5", "many", "1.20.0", "1,2345"], "en", [None, None, None, None]),
            ([1200, 24.0, 2.5, -1], "en", [1200, 24, None, None]),  # spreadsheet cells
        ],
    )
    def test_the_whole_column_decides(self, ctx, cells, locale, expected):
        values, _mark = importer.read_whole_numbers(cells, Options(locale))
        assert values == expected

    def test_the_users_choice_of_decimal_mark_wins(self, ctx):
        values, mark = importer.read_whole_numbers(["1,200", "5"], Options("en", numbers=","))
        assert values == [None, 5] and mark == ","


class TestDates:
    """Potting dates: ISO always; day and month in one order for the whole column."""

    @pytest.mark.parametrize(
        "cells, locale, expected",
        [
            (["2026-11-23", "2026/1/5"], "en", [date(2026, 11, 23), date(2026, 1, 5)]),
            (["23-11-2026", "23/11/2026", "23.11.2026"], "en", [date(2026, 11, 23)] * 3),
            (["01-02-2026"], "nl", [date(2026, 2, 1)]),  # ambiguous: the locale, day first
            (["01-02-2026"], "es", [date(2026, 2, 1)]),
            (["01/02/2026"], "en", [date(2026, 1, 2)]),  # English: month first
            (["01-02-2026", "23-11-2026"], "en", [date(2026, 2, 1), date(2026, 11, 23)]),
            (["02/01/2026", "11/23/2026"], "nl", [date(2026, 2, 1), date(2026, 11, 23)]),
            (["23-11-26"], "nl", [date(2026, 11, 23)]),
            (["2026-11-23 00:00:00"], "nl", [date(2026, 11, 23)]),
            (["31-02-2026", "tomorrow", "2026-13-01"], "nl", [None, None, None]),
            (
                [datetime(2026, 11, 23, 0, 0), date(2026, 1, 5)],
                "en",
                [date(2026, 11, 23), date(2026, 1, 5)],
            ),
        ],
    )
    def test_the_whole_column_decides(self, ctx, cells, locale, expected):
        values, _order = importer.read_dates(cells, Options(locale))
        assert values == expected

    def test_the_users_choice_of_order_wins(self, ctx):
        values, order = importer.read_dates(["01-02-2026"], Options("nl", dates="mdy"))
        assert values == [date(2026, 1, 2)] and order == "mdy"


class TestColumns:
    """The columns are found by their names; a form can say otherwise."""

    @pytest.mark.parametrize(
        "header",
        [
            [
                "lot_number",
                "plant_name",
                "pot_size",
                "quantity",
                "potting_date",
                "location",
                "customer",
            ],
            [
                "Lot number",
                "Plant name",
                "Pot size",
                "Quantity",
                "Potting date",
                "Location",
                "Customer",
            ],
            ["Lotnummer", "Plantnaam", "Potmaat", "Aantal", "Potdatum", "Locatie", "Klant"],
            ["Partij", "Soort", "Maat", "Hoeveelheid", "Datum", "Plaats", "Afnemer"],
            ["Lote", "Planta", "Maceta", "Cantidad", "Fecha", "Ubicación", "Cliente"],
            ["LOT-NR.", "Plant", "Pot", "Aantal (stuks)", "Potdatum 2026", "Kas", "Klantnaam"],
        ],
    )
    def test_english_dutch_and_spanish_names_are_recognised(self, ctx, header):
        assert importer.propose_mapping(header) == {
            name: i for i, name in enumerate(importer.COLUMNS)
        }

    def test_a_title_row_above_the_header_is_skipped(self, ctx):
        data = xlsx(
            [
                ["Oppotten week 48", None, None, "Kwekerij De Linde"],
                [],
                ["Lotnummer", "Plantnaam", "Potmaat", "Aantal", "Potdatum", "Locatie"],
                ["T-1", "Buxus", "P9", 5, "23-11-2026", "Kas 1"],
            ]
        )
        plan = importer.plan_file(data, Options("nl"))
        assert plan.ok, plan.errors()
        assert [r.row for r in plan.rows] == [4]  # the spreadsheet's own row number
        assert plan.rows[0].values["lot_number"] == "T-1"

    def test_a_column_is_used_once_and_unknown_ones_are_left_out(self, ctx):
        mapping = importer.propose_mapping(["Datum", "Opmerking", "Plant", "Datum"])
        assert mapping["potting_date"] == 0 and mapping["plant_name"] == 2
        assert mapping["lot_number"] is None and mapping["location"] is None

    @pytest.mark.parametrize("locale", ["en", "nl", "es"])
    def test_the_template_round_trips_in_every_language(self, app, locale):
        with app.app_context():
            for data in (importer.template_csv(locale), importer.template_xlsx(locale)):
                plan = importer.plan_file(data, Options(locale))
                assert plan.ok, plan.errors()
                assert plan.rows[0].values["quantity"] == 1200
                assert plan.rows[0].values["potting_date"] == date(2026, 11, 23)

    def test_a_mapping_from_the_form_overrides_the_proposal(self, ctx):
        table = importer.read_table(
            b"Nummer;Product;Pot;Stuks;Wanneer;Waar\nQ-1;Buxus;P9;1.200;23-11-2026;Kas 1\n"
        )
        proposed = importer.check(table, importer.mapping_from({}, table), Options("nl"))
        assert not proposed.ok
        assert {e.field for e in proposed.problems} == {
            "lot_number",
            "plant_name",
            "potting_date",
            "location",
        }
        form = {
            "col_lot_number": "0",
            "col_plant_name": "1",
            "col_potting_date": "4",
            "col_location": "5",
        }
        chosen = importer.check(table, importer.mapping_from(form, table), Options("nl"))
        assert chosen.ok, chosen.errors()
        assert chosen.rows[0].values == {
            "lot_number": "Q-1",
            "plant_name": "Buxus",
            "pot_size": "P9",
            "quantity": 1200,
            "potting_date": date(2026, 11, 23),
            "location": "Kas 1",
        }
        twice = importer.check(
            table, importer.mapping_from(form | {"col_location": "1"}, table), Options("nl")
        )
        assert [e.msg.code for e in twice.problems] == ["imp_column_twice"]


class TestDryRun:
    """The dry run counts new / updated / unchanged / errors and writes nothing."""

    def test_the_counts_and_the_errors_with_their_rows(self, app):
        with app.app_context():
            importer.import_file(GOOD.encode())
            data = (
                GOOD.replace(",120,", ",121,")
                + "P2648-004,Sedum,P9,24,2026-11-26,Kas 3,\n"
                + "P2648-005,Sedum,P9,lots,2026-11-26,Kas 3,\n"
            )
            before = snapshot(app)
            plan = importer.plan_file(data.encode())
            assert plan.counts() == {"new": 1, "updated": 1, "unchanged": 2, "error": 1}
            assert [(e.row, e.field, e.msg.code) for e in plan.errors()] == [
                (6, "quantity", "imp_not_whole")
            ]
            assert plan.rows[0].changed == ("quantity",)
            assert snapshot(app) == before
            with pytest.raises(ImportFailed):
                importer.commit(plan)
            assert snapshot(app) == before


class TestUploads:
    """The upload is kept between the steps: private, its owner's only, gone after an hour."""

    def test_kept_private_for_its_owner(self, app, tmp_path):
        kept = importer.save_upload(tmp_path, b"a,b\n1,2\n", "../../lots.csv", owner_id=7)
        folder = tmp_path / "imports" / kept.token
        assert importer.TOKEN.match(kept.token) and kept.filename == "lots.csv"
        assert stat.S_IMODE(os.stat(tmp_path / "imports").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(folder / "data").st_mode) == 0o600
        assert importer.load_upload(tmp_path, kept.token, 7) == kept
        assert kept.read(tmp_path) == b"a,b\n1,2\n"
        assert importer.load_upload(tmp_path, kept.token, 8) is None  # someone else's
        assert importer.load_upload(tmp_path, "../" + kept.token[3:], 7) is None
        other = importer.save_upload(tmp_path, b"x", "x.csv", owner_id=7)
        assert other.token != kept.token
        importer.discard(tmp_path, kept.token)
        assert not folder.exists() and importer.load_upload(tmp_path, kept.token, 7) is None

    def test_removed_after_an_hour(self, app, tmp_path, monkeypatch):
        old = importer.save_upload(tmp_path, b"a\n1\n", "old.csv", owner_id=1)
        fresh = importer.save_upload(tmp_path, b"a\n1\n", "new.csv", owner_id=1)
        later = time.time() + importer.MAX_AGE_S + 5
        os.utime(tmp_path / "imports" / fresh.token, (later, later))
        assert importer.sweep(tmp_path, now=later) == 1
        assert not (tmp_path / "imports" / old.token).exists()
        monkeypatch.setattr(importer.time, "time", lambda: later)
        assert importer.load_upload(tmp_path, fresh.token, 1) is None  # created over an hour ago


class TestImportPages:
    """The browser's steps: upload, columns and dry run, commit."""

    @pytest.fixture
    def client(self, app):
        return log_in(app)

    def test_the_pages_need_a_login(self, app):
        client = app.test_client()
        for path in ("/nursery/potting-lots/import", "/nursery/potting-lots/import/template.csv"):
            response = client.get(path)
            assert response.status_code == 302 and "/login" in response.headers["Location"]

    def test_the_upload_page_shows_the_fields_and_the_templates(self, client):
        text = client.get("/nursery/potting-lots/import").get_data(as_text=True)
        assert 'type="file"' in text and ".xlsx" in text
        assert "lot_number" in text and "Lotnummer".lower() in text.lower()
        assert "/nursery/potting-lots/import/template.csv" in text
        assert "/nursery/potting-lots/import/template.xlsx" in text
        assert 'data-max-bytes="2097152"' in text

    def test_the_step_page_proposes_the_columns_previews_and_counts(self, app, client):
        page = client.get(step_url(upload(client, DUTCH)))
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        for i, name in enumerate(importer.COLUMNS):
            select = re.search(rf'<select id="col_{name}".*?</select>', html, re.S).group(0)
            assert re.search(rf'<option value="{i}"[^>]*selected', select), name
        text = text_of(html)
        assert "lots.csv" in text and "CSV separated by ';', UTF-8" in text
        assert re.search(r"3 new 0 updated 0 unchanged 0 with errors", text), text
        assert "1,200" in text and "Nov 23, 2026" in text and "Feb 1, 2026" in text  # as imported
        assert "Import 3 rows" in text
        assert snapshot(app) == []  # a dry run only

    def test_a_bad_row_shows_beside_its_cell_and_blocks_the_import(self, app, client):
        data = DUTCH.replace("12.500", "12,5")
        html = client.get(step_url(upload(client, data))).get_data(as_text=True)
        cell = re.search(r'<td class="cell-error" id="row-4-quantity".*?</td>', html, re.S)
        assert cell and "12,5" in cell.group(0) and "not a whole number" in cell.group(0)
        assert 'href="#row-4-quantity"' in html  # the summary links to the cell
        assert re.search(r"<button[^>]*disabled[^>]*>\s*Import\s*</button>", html)

    def test_after_an_error_the_file_is_kept_and_a_new_mapping_imports_it(self, app, client):
        data = (
            "Nummer;Naam;Potmaat;Aantal;Potdatum;Kas;Klant\nQ-1;Buxus;P9;1.200;23-11-2026;Kas 1;\n"
        )
        step = step_url(upload(client, data))
        # the commit with the proposed columns fails: two required fields have no column
        failed = client.post(step, data={})
        assert failed.status_code == 422
        text = text_of(failed.get_data(as_text=True))
        assert re.search(r"Lot number\s*:\s*required: choose the file's column for it", text)
        assert "lots.csv" in text  # still the chosen file
        html = failed.get_data(as_text=True)
        assert 'aria-invalid="true" aria-describedby="col_lot_number-error"' in html
        # the user chooses the columns, checks again, and imports: no new upload
        form = {"col_lot_number": "0", "col_plant_name": "1"}
        checked = client.get(step, query_string=form)
        assert "1 new" in text_of(checked.get_data(as_text=True))
        done = client.post(step, data=form)
        assert done.status_code == 303 and done.headers["Location"].endswith(
            "/nursery/potting-lots"
        )
        assert lot(app, "Q-1").quantity == 1200
        assert "Imported 1 rows" in client.get(done.headers["Location"]).get_data(as_text=True)

    def test_the_commit_removes_the_file_and_a_second_one_says_so(self, app, client):
        step = step_url(upload(client, GOOD))
        token = step.rsplit("/", 1)[1]
        assert client.post(step, data={}).status_code == 303
        assert not (Path(app.config["PRESSROOM_DATA"]) / "imports" / token).exists()
        again = client.post(step, data={}, follow_redirects=True)
        assert "has expired" in again.get_data(as_text=True) and len(snapshot(app)) == 3

    def test_someone_elses_upload_is_not_theirs_to_see(self, app, client):
        step = step_url(upload(client, GOOD))
        with app.app_context():
            add_user("other@example.com", "pw-other")
        other = app.test_client()
        other.post("/login", data={"email": "other@example.com", "password": "pw-other"})
        response = other.get(step)
        assert response.status_code == 303 and response.headers["Location"].endswith("/import")
        assert other.post(step, data={}).status_code == 303
        assert snapshot(app) == []
        assert client.get(step).status_code == 200  # still there for its owner

    def test_choose_another_file_forgets_the_upload(self, app, client):
        step = step_url(upload(client, GOOD))
        assert client.post(step + "/discard").status_code == 303
        assert client.get(step).status_code == 303

    @pytest.mark.parametrize(
        "data, status, words",
        [
            (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 200, 422, "not a CSV or Excel"),
            (b"", 422, "The file is empty."),
        ],
        ids=["png-renamed-csv", "empty"],
    )
    def test_garbage_is_a_4xx_with_a_message_beside_the_field(self, client, data, status, words):
        response = upload(client, data, "photo.csv")
        assert response.status_code == status
        html = response.get_data(as_text=True)
        error = re.search(r'<p class="error-text" id="file-error"[^>]*>(.*?)</p>', html, re.S)
        assert error and words in unescape(error.group(1))
        assert 'aria-invalid="true"' in html and "file-error" in html

    def test_posting_without_a_file_asks_for_one(self, client):
        response = client.post("/nursery/potting-lots/import", data={})
        assert response.status_code == 400
        assert "Choose a CSV or Excel (.xlsx) file" in response.get_data(as_text=True)

    def test_a_50_mb_file_gets_the_limit_in_words(self, client):
        response = upload(client, b"a;b\n" + b"1;2\n" * (50 * 1024 * 1024 // 4))
        assert response.status_code == 413
        text = text_of(response.get_data(as_text=True))
        assert "The file is too large: the limit is 2 MB." in text
        assert 'type="file"' in response.get_data(as_text=True)  # the form, to choose another

    def test_html_in_a_bad_value_is_escaped(self, client):
        data = HEADER + "\nL-1,Buxus,P9,<script>alert(1)</script>,2026-11-23,Kas 1,\n"
        html = client.get(step_url(upload(client, data))).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html

    def test_templates_download_in_the_users_language(self, app, client):
        from openpyxl import load_workbook

        client.post("/settings/language", data={"locale": "nl", "next": "/"})
        csv_answer = client.get("/nursery/potting-lots/import/template.csv")
        assert csv_answer.status_code == 200 and csv_answer.mimetype == "text/csv"
        assert "attachment" in csv_answer.headers["Content-Disposition"]
        body = csv_answer.data.decode("utf-8-sig")
        header, example = body.splitlines()[:2]
        assert "Potmaat;Aantal" in header and ";1.200;23-11-2026;" in example
        xlsx_answer = client.get("/nursery/potting-lots/import/template.xlsx")
        assert xlsx_answer.status_code == 200
        sheet = load_workbook(io.BytesIO(xlsx_answer.data), read_only=True).active
        rows = list(sheet.iter_rows(values_only=True))
        assert (
            "Aantal" in rows[0] and rows[1][3] == 1200 and rows[1][4].date() == date(2026, 11, 23)
        )
        assert client.get("/nursery/potting-lots/import/template.pdf").status_code == 404

    def test_a_dutch_user_reads_01_02_as_1_february(self, app, client):
        client.post("/settings/language", data={"locale": "nl", "next": "/"})
        step = step_url(upload(client, HEADER + "\nD-1,Buxus,P9,5,01-02-2026,Kas 1,\n"))
        assert client.post(step, data={}).status_code == 303
        assert lot(app, "D-1").potting_date == date(2026, 2, 1)


class TestCli:
    """Scripts can tell success from failure; the CLI reads files like the browser does."""

    def test_a_failed_import_exits_non_zero_with_the_errors_on_stderr(self, app, tmp_path):
        path = tmp_path / "bad.csv"
        path.write_text(HEADER + "\nL-1,Buxus,P9,x,2026-11-23,Kas 1,\n")
        result = app.test_cli_runner().invoke(args=["potting-lots", "import", str(path)])
        assert result.exit_code == 1
        assert "row 2, Quantity: 'x' is not a whole number" in result.stderr.replace('"', "'") or (
            "row 2, Quantity: x is not a whole number" in result.stderr
        )
        assert "Nothing was imported" in result.stderr

    def test_a_missing_file_is_a_usage_error(self, app, tmp_path):
        result = app.test_cli_runner().invoke(
            args=["potting-lots", "import", str(tmp_path / "no.csv")]
        )
        assert result.exit_code == 2

    def test_a_dry_run_counts_and_writes_nothing(self, app, tmp_path):
        path = tmp_path / "lots.xlsx"
        path.write_bytes(
            xlsx(
                [
                    ["Lotnummer", "Plant", "Potmaat", "Aantal", "Potdatum", "Locatie"],
                    ["C-1", "Buxus", "P9", 5, "01-02-2026", "Kas 1"],
                ]
            )
        )
        args = ["potting-lots", "import", str(path), "--dry-run", "--locale", "nl"]
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 0, result.output
        assert "Dry run, nothing imported: 1 rows: 1 new" in result.output
        assert snapshot(app) == []
        result = app.test_cli_runner().invoke(args=args[:-3] + ["--locale", "nl"])
        assert result.exit_code == 0, result.output
        assert lot(app, "C-1").potting_date == date(2026, 2, 1)
