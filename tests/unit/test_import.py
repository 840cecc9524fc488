"""Potting-lot CSV import (DESIGN §5): upsert by lot_number, all rows or none, bad rows reported
with their line number; from the CLI and from the browser form, with the same behaviour."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import add_user
from webapp.extensions import db
from webapp.models import PottingLot

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


class Importer:
    """Runs an import through the CLI or through the browser form; answers (ok, message text)."""

    def __init__(self, app, how: str, tmp_path: Path) -> None:
        self.app, self.how, self.tmp_path = app, how, tmp_path
        if how == "form":
            with app.app_context():
                add_user()
            self.client = app.test_client()
            self.client.post("/login", data={"email": "staff@example.com", "password": "pw-staff"})

    def __call__(self, data: bytes | str) -> tuple[bool, str]:
        raw = data.encode() if isinstance(data, str) else data
        if self.how == "cli":
            path = self.tmp_path / "lots.csv"
            path.write_bytes(raw)
            result = self.app.test_cli_runner().invoke(args=["potting-lots", "import", str(path)])
            return result.exit_code == 0, result.output
        response = self.client.post(
            "/nursery/potting-lots/import",
            data={"file": (io.BytesIO(raw), "lots.csv")},
            content_type="multipart/form-data",
            follow_redirects=True,
        )
        text = response.get_data(as_text=True)
        assert response.status_code == 200, text
        ok = "Nothing was imported" not in text and "Imported" in text
        return ok, text


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

    @pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["no-bom", "bom"])
    @pytest.mark.parametrize("separator", [",", ";"])
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
                    "P10,5" if separator == ";" else "P10.5",
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

    def test_a_file_with_blank_lines_skips_them(self, app, do_import):
        ok, message = do_import(GOOD.replace("\nP2648-002", "\n\nP2648-002") + "\n\n")
        assert ok, message
        assert len(snapshot(app)) == 3


class TestBadFiles:
    """A bad row is reported with its line number, and nothing at all is imported."""

    @pytest.fixture
    def existing(self, app) -> list[tuple]:
        from webapp.nursery.demo import seed_lots

        with app.app_context():
            seed_lots(5)
        return snapshot(app)

    def test_a_bad_row_is_reported_with_its_line_and_the_table_is_unchanged(
        self, app, do_import, existing
    ):
        first_existing = existing[0][1]
        data = (
            "\n".join(
                [
                    HEADER,
                    f"{first_existing},Changed name,P9,1,2026-11-23,Kas 1,",  # would update a lot …
                    "N-1,New plant,P9,5,2026-11-23,Kas 1,",  # … and add one,
                    "N-2,Broken plant,P9,many,2026-11-23,Kas 1,",  # but line 4 is wrong
                ]
            )
            + "\n"
        )
        ok, message = do_import(data)
        assert not ok
        assert "line 4" in message and "quantity" in message and "many" in message
        assert snapshot(app) == existing

    def test_every_bad_row_is_listed(self, app, do_import, existing):
        data = (
            "\n".join(
                [
                    HEADER,
                    "N-1,,P9,5,2026-11-23,Kas 1,",
                    "N-2,Plant,P9,5,23-11-2026,Kas 1,",
                    "N-3,Plant,P9,-1,2026-11-23,Kas 1,",
                    "N-1,Plant,P9,5,2026-11-23,Kas 1,",
                ]
            )
            + "\n"
        )
        ok, message = do_import(data)
        assert not ok
        assert "line 2" in message and "plant_name" in message
        assert "line 3" in message and "potting_date" in message
        assert "line 4" in message and "quantity" in message
        assert (
            "line 5" in message and "line 2" in message.split("line 5", 1)[1]
        )  # duplicate of line 2
        assert snapshot(app) == existing

    def test_a_missing_column_is_reported_on_line_one(self, app, do_import, existing):
        ok, message = do_import("lot_number,plant_name,quantity\nX-1,Buxus,3\n")
        assert not ok
        assert "line 1" in message and "pot_size" in message and "potting_date" in message
        assert snapshot(app) == existing

    def test_a_file_that_is_not_utf8_is_refused_clearly(self, app, do_import, existing):
        data = (HEADER + "\nL-1,Rosa 'Königin',P9,5,2026-11-23,Kas 1,\n").encode("latin-1")
        ok, message = do_import(data)
        assert not ok and "UTF-8" in message
        assert snapshot(app) == existing

    @pytest.mark.parametrize("data", ["", HEADER + "\n"], ids=["empty", "header-only"])
    def test_an_empty_file_is_refused(self, app, do_import, existing, data):
        ok, message = do_import(data)
        assert not ok and ("empty" in message.lower() or "no rows" in message)
        assert snapshot(app) == existing

    def test_a_value_longer_than_its_column_is_refused(self, app, do_import, existing):
        ok, message = do_import(HEADER + f"\nL-1,Buxus,{'P' * 21},5,2026-11-23,Kas 1,\n")
        assert not ok and "line 2" in message and "pot_size" in message
        assert snapshot(app) == existing

    def test_a_line_the_csv_module_cannot_read_is_reported_not_a_crash(
        self, app, do_import, existing
    ):
        huge = "x" * 140_000  # over the csv module's field size limit
        ok, message = do_import(HEADER + f'\nL-1,"{huge}",P9,5,2026-11-23,Kas 1,\n')
        assert not ok and "line 2" in message and "cannot be read" in message
        assert snapshot(app) == existing


class TestCliExitCodes:
    """Scripts can tell success from failure."""

    def test_a_failed_import_exits_non_zero_with_the_errors_on_stderr(self, app, tmp_path):
        path = tmp_path / "bad.csv"
        path.write_text(HEADER + "\nL-1,Buxus,P9,x,2026-11-23,Kas 1,\n")
        result = app.test_cli_runner().invoke(args=["potting-lots", "import", str(path)])
        assert result.exit_code == 1
        assert "line 2" in result.stderr and "Nothing was imported" in result.stderr

    def test_a_missing_file_is_a_usage_error(self, app, tmp_path):
        result = app.test_cli_runner().invoke(
            args=["potting-lots", "import", str(tmp_path / "no.csv")]
        )
        assert result.exit_code == 2


class TestImportForm:
    """The browser form: login required, a file required, HTML in messages escaped."""

    def test_the_form_needs_a_login(self, client):
        response = client.get("/nursery/potting-lots/import")
        assert response.status_code == 302 and "/login" in response.headers["Location"]

    def test_the_form_shows_the_columns(self, app, client, auth):
        with app.app_context():
            add_user()
        auth.login()
        text = client.get("/nursery/potting-lots/import").get_data(as_text=True)
        assert 'type="file"' in text and "lot_number" in text and "customer" in text

    def test_posting_without_a_file_asks_for_one(self, app, client, auth):
        with app.app_context():
            add_user()
        auth.login()
        response = client.post("/nursery/potting-lots/import", data={})
        assert response.status_code == 200 and "Choose a CSV file" in response.get_data(
            as_text=True
        )

    def test_a_good_upload_goes_to_the_table_with_a_message(self, app, client, auth):
        with app.app_context():
            add_user()
        auth.login()
        response = client.post(
            "/nursery/potting-lots/import",
            data={"file": (io.BytesIO(GOOD.encode()), "lots.csv")},
            content_type="multipart/form-data",
        )
        assert response.status_code == 303
        assert response.headers["Location"].endswith("/nursery/potting-lots")
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        assert "Imported 3 rows" in page and "P2648-003" in page

    def test_html_in_a_bad_value_is_escaped_in_the_error_list(self, app, client, auth):
        with app.app_context():
            add_user()
        auth.login()
        data = HEADER + "\nL-1,Buxus,P9,<script>alert(1)</script>,2026-11-23,Kas 1,\n"
        response = client.post(
            "/nursery/potting-lots/import",
            data={"file": (io.BytesIO(data.encode()), "lots.csv")},
            content_type="multipart/form-data",
        )
        text = response.get_data(as_text=True)
        assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text

    def test_an_upload_over_the_size_limit_is_413(self, make_app):
        app = make_app(MAX_CONTENT_LENGTH=2048)
        with app.app_context():
            add_user()
        client = app.test_client()
        client.post("/login", data={"email": "staff@example.com", "password": "pw-staff"})
        big = (HEADER + "\n" + "L-1,Buxus,P9,1,2026-11-23,Kas 1,\n" * 200).encode()
        response = client.post(
            "/nursery/potting-lots/import",
            data={"file": (io.BytesIO(big), "lots.csv")},
            content_type="multipart/form-data",
        )
        assert response.status_code == 413
