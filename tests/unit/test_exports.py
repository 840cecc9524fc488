"""Potting-lot exports (`potting_lots_csv`, `potting_lots_xlsx`): the file's bytes and cells, the
filters, splitting and merging, consistency, the worker, the API and the table's export menu."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa
from flask import Flask

from tests.conftest import add_user, join_all
from tests.unit.test_ui import Page, page_of
from webapp import documents, exports, jobs
from webapp.auth import create_token
from webapp.documents import Part
from webapp.documents import potting_lot_exports as module
from webapp.errors import LeaseLost, PermanentError
from webapp.extensions import db
from webapp.jobs import artifacts
from webapp.models import Job, JobStatus, PottingLot
from webapp.nursery import importer
from webapp.nursery.demo import seed_lots

CSV, XLSX = "potting_lots_csv", "potting_lots_xlsx"
HEADER = [
    "lot_number",
    "plant_name",
    "pot_size",
    "quantity",
    "potting_date",
    "location",
    "customer",
]
TRICKY = [  # lot_number, plant_name, customer: the delimiters, quotes, line breaks, diacritics
    ("A-001", 'Rosa "Königin"; von Dänemark', "Ogrody Łąkowski, Sp. z o.o."),
    ("A-002", "Heuchera 'Crème Brûlée'\nsecond line", None),
    ("A-003", "=1+1", "@SUM(A1)"),  # looks like a formula: stays text
]


# -- helpers ----------------------------------------------------------------------------------


class Recorder:
    """A RenderContext that records progress and hands out temp paths under `folder`."""

    def __init__(self, folder: Path, *, stop_after: int | None = None) -> None:
        self.folder = folder
        self.calls: list[tuple[int, str | None, bool]] = []
        self.stop_after = stop_after

    def progress(
        self, done: int, step: str | None = None, *, force: bool = False, **params: Any
    ) -> None:
        self.calls.append((done, step, force))
        if self.stop_after is not None and done >= self.stop_after:
            raise LeaseLost("cancelled")

    def temp_path(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f"{len(list(self.folder.iterdir()))}.part"


def add_lot(
    lot_number: str,
    plant_name: str = "Salvia nemorosa 'Caradonna'",
    *,
    customer: str | None = None,
    pot_size: str = "P9",
    quantity: int = 24,
    potting_date: date = date(2026, 11, 23),
    location: str = "Kas 1 – tafel 04",
) -> None:
    db.session.add(
        PottingLot(
            lot_number=lot_number,
            plant_name=plant_name,
            pot_size=pot_size,
            quantity=quantity,
            potting_date=potting_date,
            location=location,
            customer=customer,
        )
    )
    db.session.commit()


def db_rows(**where: Any) -> list[tuple[Any, ...]]:
    """The table's rows in table order, as the §5 columns."""
    columns = [getattr(PottingLot, name) for name in HEADER]
    query = sa.select(*columns).order_by(PottingLot.lot_number)
    for key, value in where.items():
        query = query.where(getattr(PottingLot, key) == value)
    return [tuple(row) for row in db.session.execute(query)]


def render(kind_name: str, job: Job, folder: Path, part: Part | None = None) -> Path:
    """Render a submitted job (or one part of it) directly, as a worker would."""
    ctx = Recorder(folder / "tmp")
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"out-{part.index if part else 'whole'}{documents.get(kind_name).suffix}"
    documents.get(kind_name).render(job, ctx, out, part)
    return out


def render_split(kind_name: str, job: Job, folder: Path, size: int) -> Path:
    """Render `job` in parts of `size` rows and merge them, as the chunks and the merge do."""
    kind = documents.get(kind_name)
    parts = kind.split(job, {kind.chunk_key: size})
    assert len(parts) > 1
    paths = [render(kind_name, job, folder, part) for part in parts]
    out = folder / f"merged{kind.suffix}"
    kind.merge(job, Recorder(folder / "tmp"), paths, out)
    return out


def csv_rows(data: bytes, delimiter: str = ",") -> list[list[str]]:
    assert data.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=delimiter))


def as_csv(row: tuple[Any, ...]) -> list[str]:
    return [v.isoformat() if isinstance(v, date) else "" if v is None else str(v) for v in row]


def xlsx_rows(path: Path) -> list[tuple[Any, ...]]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return [tuple(row) for row in book.active.iter_rows(values_only=True)]
    finally:
        book.close()


def as_xlsx(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A database row as openpyxl reads it back: dates as midnight datetimes, None for blank."""
    return tuple(datetime(v.year, v.month, v.day) if isinstance(v, date) else v for v in row)


def job_row(job_id: str) -> Job:
    db.session.commit()  # a new transaction sees the worker's commits
    row = db.session.get(Job, job_id)
    assert row is not None
    return row


def file_of(job_id: str) -> Path:
    row = job_row(job_id)
    assert row.status == JobStatus.DONE, (row.status, row.error_code, row.error_params)
    return artifacts.root() / row.artifact.path


@contextmanager
def worker(app: Flask, threads: int = 2) -> Iterator[Any]:
    """A stub-broker worker with several threads, so chunks really run side by side."""
    import dramatiq

    import workers.actors  # noqa: F401  (setup() binds its actors to this app's broker)
    from workers.broker import setup

    broker = setup(app)
    running = dramatiq.Worker(broker, worker_timeout=50, worker_threads=threads)
    running.start()
    try:
        yield lambda: join_all(broker, running)
    finally:
        running.stop()
        broker.close()


@pytest.fixture
def tricky(ctx: Flask, lots: int) -> None:
    for lot_number, plant_name, customer in TRICKY:
        add_lot(lot_number, plant_name, customer=customer)


# -- the CSV ----------------------------------------------------------------------------------


class TestCsv:
    def test_it_starts_with_a_bom_and_the_import_columns_as_header(
        self, ctx, staff, lots, tmp_path
    ):
        job, _ = jobs.submit(staff, CSV, {"filter": {}})
        data = render(CSV, job, tmp_path).read_bytes()
        assert data.startswith(b"\xef\xbb\xbf" + ",".join(HEADER).encode() + b"\r\n")
        assert tuple(HEADER) == importer.COLUMNS

    def test_each_lot_is_one_row_in_table_order_with_iso_dates(self, ctx, staff, lots, tmp_path):
        job, _ = jobs.submit(staff, CSV, {"filter": {}})
        rows = csv_rows(render(CSV, job, tmp_path).read_bytes())
        assert rows[0] == HEADER
        assert rows[1:] == [as_csv(row) for row in db_rows()]
        assert len(rows) == 41

    def test_semicolons_are_asked_for_with_the_delimiter(self, ctx, staff, lots, tmp_path):
        job, _ = jobs.submit(staff, CSV, {"filter": {}, "delimiter": ";"})
        data = render(CSV, job, tmp_path).read_bytes()
        assert data.splitlines()[0] == b"\xef\xbb\xbf" + ";".join(HEADER).encode()
        assert csv_rows(data, ";")[1:] == [as_csv(row) for row in db_rows()]

    @pytest.mark.parametrize("delimiter", [",", ";"])
    def test_delimiters_quotes_and_line_breaks_in_a_field_are_quoted(
        self, ctx, staff, tricky, tmp_path, delimiter
    ):
        job, _ = jobs.submit(staff, CSV, {"filter": {"lot_number": "A-"}, "delimiter": delimiter})
        data = render(CSV, job, tmp_path).read_bytes()
        text = data.decode("utf-8")
        assert '"Rosa ""Königin""; von Dänemark"' in text  # quoted: it holds quotes
        assert "\"Heuchera 'Crème Brûlée'\nsecond line\"" in text  # the line break kept, quoted
        if delimiter == ",":
            assert '"Ogrody Łąkowski, Sp. z o.o."' in text
        else:
            assert ";Ogrody Łąkowski, Sp. z o.o.\r\n" in text  # no delimiter in it: bare
        rows = csv_rows(data, delimiter)
        assert [(r[0], r[1], r[6]) for r in rows[1:]] == [(n, p, c or "") for n, p, c in TRICKY]

    def test_an_exported_csv_imports_back_unchanged(self, ctx, staff, tricky, tmp_path):
        for delimiter in (",", ";"):
            job, _ = jobs.submit(staff, CSV, {"filter": {}, "delimiter": delimiter})
            result = importer.import_csv(render(CSV, job, tmp_path).read_bytes())
            assert (result.total, result.unchanged, result.created, result.updated) == (
                43,
                43,
                0,
                0,
            )

    def test_a_split_export_merged_is_byte_for_byte_the_whole_one(
        self, ctx, staff, tricky, tmp_path
    ):
        job, _ = jobs.submit(staff, CSV, {"filter": {}, "delimiter": ";"})
        whole = render(CSV, job, tmp_path / "whole").read_bytes()
        merged = render_split(CSV, job, tmp_path / "split", size=7).read_bytes()
        assert merged == whole
        assert merged.count(b"\xef\xbb\xbf") == 1 and merged.count(b"lot_number;") == 1

    def test_the_file_is_named_after_the_day_it_was_asked_for_in_the_configured_zone(
        self, ctx, staff, lots
    ):
        job, _ = jobs.submit(staff, CSV, {"filter": {}})
        job.created_at = datetime(2026, 12, 1, 23, 30)  # UTC: already 2 December in Amsterdam
        assert documents.get(CSV).file_name(job) == "potting_lots_2026-12-02.csv"
        assert documents.get(XLSX).file_name(job) == "potting_lots_2026-12-02.xlsx"


# -- the XLSX ---------------------------------------------------------------------------------


class TestXlsx:
    def test_the_workbook_reads_back_row_by_row_as_the_database_rows(
        self, ctx, staff, tricky, tmp_path
    ):
        job, _ = jobs.submit(staff, XLSX, {"filter": {}})
        rows = xlsx_rows(render(XLSX, job, tmp_path))
        assert rows[0] == tuple(HEADER)
        assert rows[1:] == [as_xlsx(row) for row in db_rows()]

    def test_quantities_are_numbers_dates_are_dates_and_formulas_stay_text(
        self, ctx, staff, tricky, tmp_path
    ):
        job, _ = jobs.submit(staff, XLSX, {"filter": {"lot_number": "A-"}})
        book = openpyxl.load_workbook(render(XLSX, job, tmp_path))
        sheet = book.active
        assert sheet["D2"].data_type == "n" and sheet["D2"].value == 24
        assert sheet["E2"].is_date and sheet["E2"].number_format == "yyyy-mm-dd"
        assert sheet["E2"].value == datetime(2026, 11, 23)
        assert sheet["B4"].data_type == "s" and sheet["B4"].value == "=1+1"
        assert sheet["G4"].value == "@SUM(A1)" and sheet["G3"].value is None
        book.close()

    def test_the_header_is_bold_and_frozen_and_the_columns_are_sized(
        self, ctx, staff, lots, tmp_path
    ):
        job, _ = jobs.submit(staff, XLSX, {"filter": {}})
        book = openpyxl.load_workbook(render(XLSX, job, tmp_path))
        sheet = book.active
        assert all(cell.font.bold for cell in sheet[1]) and not sheet["A2"].font.bold
        assert sheet.freeze_panes == "A2"
        widths = {letter: sheet.column_dimensions[letter].width for letter in "ABCDEFG"}
        assert widths["B"] > 40 and 8 < widths["C"] < 12 and all(w >= 9 for w in widths.values())
        assert sheet.title == "potting_lots"
        book.close()

    def test_a_split_export_merged_is_byte_for_byte_the_whole_one(
        self, ctx, staff, tricky, tmp_path
    ):
        job, _ = jobs.submit(staff, XLSX, {"filter": {}})
        whole = render(XLSX, job, tmp_path / "whole")
        merged = render_split(XLSX, job, tmp_path / "split", size=10)
        assert merged.read_bytes() == whole.read_bytes()
        assert len(xlsx_rows(merged)) == 44

    def test_a_merged_workbook_keeps_one_header_and_the_full_dimension(
        self, ctx, staff, lots, tmp_path
    ):
        job, _ = jobs.submit(staff, XLSX, {"filter": {}})
        merged = render_split(XLSX, job, tmp_path, size=15)
        sheet = zipfile.ZipFile(merged).read(exports.SHEET)
        assert sheet.count(b'<row r="1"') == 1 and b'<dimension ref="A1:G41"/>' in sheet

    def test_the_same_rows_give_the_same_bytes(self, ctx, staff, lots, tmp_path):
        job, _ = jobs.submit(staff, XLSX, {"filter": {}})
        first = render(XLSX, job, tmp_path / "a").read_bytes()
        assert render(XLSX, job, tmp_path / "b").read_bytes() == first

    def test_a_part_that_is_not_a_workbook_fails_the_merge_with_a_message(self, ctx, tmp_path):
        bad = tmp_path / "bad.xlsx"
        with zipfile.ZipFile(bad, "w") as book:
            book.writestr(exports.SHEET, b"<worksheet/>")
        with pytest.raises(PermanentError) as info:
            documents.get(XLSX).merge(None, Recorder(tmp_path), [bad, bad], tmp_path / "out.xlsx")
        assert info.value.code == "merge_failed"


# -- parameters -------------------------------------------------------------------------------


class TestParams:
    def test_filters_select_the_rows_and_are_kept_normalised(self, ctx, staff, lots, tmp_path):
        job, _ = jobs.submit(staff, CSV, {"filter": {"pot_size": "P9", "q": "  ", "location": ""}})
        p9 = db_rows(pot_size="P9")
        assert 0 < len(p9) < 40 and job.progress_total == len(p9)
        assert job.params == {"filter": {"pot_size": "P9"}, "delimiter": ","}
        assert job.summary["filter"] == {"pot_size": "P9"}
        assert csv_rows(render(CSV, job, tmp_path).read_bytes())[1:] == [as_csv(r) for r in p9]

    def test_a_week_filter_is_normalised_to_its_iso_spelling(self, ctx, staff, lots):
        week = db.session.scalar(sa.select(PottingLot.potting_date).limit(1)).isocalendar()
        job, _ = jobs.submit(staff, XLSX, {"filter": {"week": f"{week[0]}-w{week[1]:02d}"}})
        assert job.params == {"filter": {"week": f"{week[0]}-W{week[1]:02d}"}}

    def test_the_same_export_asked_twice_is_one_job(self, ctx, staff, lots):
        first, created = jobs.submit(staff, CSV, {"filter": {"pot_size": "P9"}})
        again, again_created = jobs.submit(
            staff, CSV, {"filter": {"pot_size": "P9", "q": ""}, "delimiter": ","}
        )
        assert created and not again_created and again.id == first.id
        other, _ = jobs.submit(staff, CSV, {"filter": {"pot_size": "P9"}, "delimiter": ";"})
        assert other.id != first.id

    def test_an_empty_filter_exports_every_lot_and_no_match_a_header_only_file(
        self, ctx, staff, lots, tmp_path
    ):
        everything, _ = jobs.submit(staff, XLSX, {})
        assert everything.progress_total == 40 and everything.params == {"filter": {}}
        nothing, _ = jobs.submit(staff, CSV, {"filter": {"q": "no such plant"}})
        assert nothing.progress_total == 0
        assert csv_rows(render(CSV, nothing, tmp_path).read_bytes()) == [HEADER]

    @pytest.mark.parametrize(
        "kind, params, field, code",
        [
            (CSV, {"filter": {"week": "48"}}, "filter.week", "week_format"),
            (CSV, {"filter": {"week": "2026-W60"}}, "filter.week", "week_missing"),
            (XLSX, {"filter": {"colour": "red"}}, "filter.colour", "filter_unknown"),
            (XLSX, {"filter": {"q": 7}}, "filter.q", "filter_text"),
            (CSV, {"filter": "all"}, "filter", "field_object"),
            (CSV, {"filter": {}, "delimiter": "|"}, "delimiter", "field_choice"),
            (XLSX, {"filter": {}, "delimiter": ";"}, "delimiter", "field_unknown"),
            (CSV, {"filter": {}, "sheet": "x"}, "sheet", "field_unknown"),
        ],
    )
    def test_bad_params_are_refused_with_the_field_named(
        self, ctx, staff, lots, kind, params, field, code
    ):
        with pytest.raises(jobs.InvalidParams) as info:
            jobs.submit(staff, kind, params)
        assert info.value.fields[field].code == code
        assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 0

    def test_an_export_over_the_row_limit_is_refused(self, make_app):
        app = make_app(MAX_EXPORT_ROWS=30)
        with app.app_context():
            staff = add_user()
            seed_lots(40)
            with pytest.raises(jobs.InvalidParams) as info:
                jobs.submit(staff, XLSX, {"filter": {}})
            assert info.value.msg.code == "too_many" and info.value.msg.params["limit"] == 30
            assert jobs.submit(staff, XLSX, {"filter": {"pot_size": "P9"}})[1]

    def test_an_xlsx_export_is_never_allowed_more_rows_than_a_sheet_holds(self, make_app):
        app = make_app(MAX_EXPORT_ROWS=5_000_000)
        assert documents.get(XLSX).limit(app.config) == 1_048_575
        assert documents.get(CSV).limit(app.config) == 5_000_000

    def test_prepare_counts_and_versions_the_rows_in_one_query(self, ctx, staff, lots):
        kind = documents.get(CSV)
        statements: list[str] = []

        def record(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
            statements.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", record)
        try:
            prepared = kind.prepare(kind.parse({"filter": {"location": "Buitenveld A"}}), staff)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", record)
        queries = [q for q in statements if q.upper() not in ("BEGIN", "COMMIT", "ROLLBACK")]
        assert len(queries) == 1 and "count(" in queries[0].lower()
        assert prepared.total == len(db_rows(location="Buitenveld A"))

    def test_a_changed_row_changes_the_data_version(self, ctx, staff, lots):
        kind = documents.get(XLSX)

        def version() -> str:
            return kind.prepare(kind.parse({"filter": {}}), staff).data_version

        before = version()
        db.session.get(PottingLot, 5).quantity += 1
        db.session.commit()
        changed = version()
        db.session.delete(db.session.get(PottingLot, 6))
        db.session.commit()
        assert len({before, changed, version()}) == 3


# -- rendering --------------------------------------------------------------------------------


class TestRender:
    def test_progress_counts_rows_while_writing(self, ctx, staff, lots, tmp_path, monkeypatch):
        monkeypatch.setattr(module, "BATCH", 15)
        job, _ = jobs.submit(staff, CSV, {"filter": {}})
        ctx_ = Recorder(tmp_path)
        documents.get(CSV).render(job, ctx_, tmp_path / "out.csv", None)
        assert ctx_.calls[0] == (0, "writing_rows", True)
        assert [c[0] for c in ctx_.calls if c[1] == "writing_rows"][1:] == [15, 30, 40]
        assert ctx_.calls[-1] == (40, "writing_file", True)

    def test_a_part_reports_the_rows_of_its_slice(self, ctx, staff, lots, tmp_path):
        job, _ = jobs.submit(staff, XLSX, {"filter": {}})
        ctx_ = Recorder(tmp_path)
        documents.get(XLSX).render(job, ctx_, tmp_path / "p.xlsx", Part(1, 15, 30))
        assert ctx_.calls[-1] == (15, "writing_file", True)
        rows = [r for r in xlsx_rows(tmp_path / "p.xlsx") if any(r)]  # rows 2-16 are blank
        assert rows == [tuple(HEADER)] + [as_xlsx(r) for r in db_rows()[15:30]]

    @pytest.mark.parametrize("kind", [CSV, XLSX])
    def test_a_cancel_stops_the_render_and_leaves_no_temp_files(
        self, ctx, staff, lots, tmp_path, monkeypatch, kind
    ):
        import tempfile

        monkeypatch.setattr(module, "BATCH", 10)
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "system-tmp"))
        (tmp_path / "system-tmp").mkdir()
        job, _ = jobs.submit(staff, kind, {"filter": {}})
        out = tmp_path / "out"
        with pytest.raises(LeaseLost):
            documents.get(kind).render(job, Recorder(tmp_path, stop_after=20), out, None)
        assert list((tmp_path / "system-tmp").iterdir()) == []

    @pytest.mark.parametrize("change", ["edit", "delete", "insert"])
    def test_rows_changed_after_the_submit_fail_the_export_saying_so(
        self, ctx, staff, lots, tmp_path, change
    ):
        job, _ = jobs.submit(staff, CSV, {"filter": {}})
        if change == "edit":
            db.session.get(PottingLot, 3).plant_name = "Acer campestre"
        elif change == "delete":
            db.session.delete(db.session.get(PottingLot, 3))
        else:
            db.session.add(
                PottingLot(
                    lot_number="Z-1",
                    plant_name="Acer",
                    pot_size="P9",
                    quantity=1,
                    potting_date=date(2026, 11, 2),
                    location="X",
                )
            )
        db.session.commit()
        with pytest.raises(PermanentError) as info:
            render(CSV, job, tmp_path)
        assert info.value.code == "rows_changed"

    def test_rows_changed_while_a_part_was_read_fail_it(
        self, ctx, staff, lots, tmp_path, monkeypatch
    ):
        """Given the rows change between the first and the second batch of a part, the part's
        closing check notices, so no part of a split export ever mixes two states."""
        monkeypatch.setattr(module, "BATCH", 10)
        job, _ = jobs.submit(staff, XLSX, {"filter": {}})

        class Importing(Recorder):
            def progress(self, done: int, step: str | None = None, **kw: Any) -> None:
                super().progress(done, step, **kw)
                if done == 10:
                    add_lot("ZZ-1")

        with pytest.raises(PermanentError) as info:
            documents.get(XLSX).render(
                job, Importing(tmp_path), tmp_path / "x.xlsx", Part(0, 0, 20)
            )
        assert info.value.code == "rows_changed"

    def test_the_keyset_walks_the_tables_own_order(self, ctx):
        """The batches continue after the last lot number read: that is only the table's order
        while the table is ordered by lot number alone (unique)."""
        from webapp.nursery.filters import ordered

        assert str(ordered(sa.select(PottingLot.id))).endswith("ORDER BY potting_lots.lot_number")
        assert PottingLot.__table__.c.lot_number.unique


# -- through the worker -----------------------------------------------------------------------


class TestThroughTheWorker:
    def test_a_csv_export_runs_to_a_downloadable_file(self, ctx, staff, lots, stub_worker):
        job, _ = jobs.submit(staff, CSV, {"filter": {}, "delimiter": ";"})
        stub_worker()
        row = job_row(job.id)
        assert row.status == JobStatus.DONE and row.progress_done == row.progress_total == 40
        assert row.unit == "row" and row.file_name.startswith("potting_lots_")
        assert row.artifact.media_type.startswith("text/csv")
        assert csv_rows(file_of(job.id).read_bytes(), ";")[1:] == [as_csv(r) for r in db_rows()]

    @pytest.mark.parametrize("kind", [CSV, XLSX])
    def test_a_big_export_is_split_and_merged_into_the_file_one_render_makes(
        self, make_app, tmp_path, kind
    ):
        app = make_app(CHUNK_ROWS=12, CSV_CHUNK_ROWS=12)
        with app.app_context():
            staff = add_user()
            seed_lots(40)
            job, _ = jobs.submit(staff, kind, {"filter": {}})
            whole = render(kind, job, tmp_path).read_bytes()
            with worker(app) as drain:
                drain()
            row = job_row(job.id)
            assert row.chunks_total == 4 and row.progress_done == 40
            assert file_of(job.id).read_bytes() == whole
            assert (
                db.session.scalar(sa.select(sa.func.count(Job.id)).where(Job.parent_id == job.id))
                == 0
            )

    def test_an_export_whose_rows_changed_fails_with_a_message_and_runs_again_on_retry(
        self, ctx, staff, lots
    ):
        from webapp.db import write_txn
        from webapp.jobs.runner import run

        job, _ = jobs.submit(staff, XLSX, {"filter": {}})
        with write_txn() as session:  # an edit between the submit and the worker
            session.get(PottingLot, 1).quantity = 999
        run(job.id)  # the worker's message, in this thread: the edit is surely first
        row = job_row(job.id)
        assert row.status == JobStatus.FAILED and row.error_code == "rows_changed"
        assert row.attempts == 1  # permanent: retrying the same stale version cannot help
        jobs.retry(row)
        run(job.id)
        assert any(r[3] == 999 for r in xlsx_rows(file_of(job.id)))


# -- the API ----------------------------------------------------------------------------------


class TestApi:
    """Requests get their own app context (and session) here, as in production: a test-wide
    context would share one session, whose read snapshot would not see the worker's commits."""

    @pytest.fixture
    def token(self, app: Flask) -> str:
        with app.app_context():
            user = add_user()
            seed_lots(40)
            return create_token(user)

    def test_a_csv_export_is_202_then_its_file(self, app, client, token, stub_worker):
        headers = {"Authorization": f"Bearer {token}"}
        response = client.post(
            "/api/v1/jobs",
            headers=headers,
            json={"kind": CSV, "params": {"filter": {"pot_size": "P9"}, "delimiter": ";"}},
        )
        assert response.status_code == 202, response.get_json()
        body = response.get_json()
        assert body["kind"] == CSV and body["progress"]["unit"] == "row"
        assert body["params"] == {"filter": {"pot_size": "P9"}, "delimiter": ";"}
        with app.app_context():
            p9 = db_rows(pot_size="P9")
        assert body["progress"]["total"] == len(p9)
        stub_worker()
        file = client.get(f"/api/v1/jobs/{body['id']}/file", headers=headers)
        assert file.status_code == 200 and file.mimetype == "text/csv"
        assert re.search(
            r"filename=\"potting_lots_\d{4}-\d{2}-\d{2}\.csv\"", file.headers["Content-Disposition"]
        )
        assert csv_rows(file.data, ";")[1:] == [as_csv(r) for r in p9]

    def test_an_xlsx_export_serves_a_workbook(self, client, token, stub_worker):
        headers = {"Authorization": f"Bearer {token}"}
        job_id = client.post(
            "/api/v1/jobs", headers=headers, json={"kind": XLSX, "params": {"filter": {}}}
        ).get_json()["id"]
        stub_worker()
        file = client.get(f"/api/v1/jobs/{job_id}/file", headers=headers)
        assert file.status_code == 200 and file.mimetype == documents.get(XLSX).media_type
        assert file.data.startswith(b"PK")
        book = openpyxl.load_workbook(io.BytesIO(file.data), read_only=True)
        assert sum(1 for _ in book.active.iter_rows()) == 41
        book.close()

    def test_an_invalid_filter_is_422_with_the_field(self, client, token):
        response = client.post(
            "/api/v1/jobs",
            headers={"Authorization": f"Bearer {token}"},
            json={"kind": XLSX, "params": {"filter": {"week": "48"}}},
        )
        assert response.status_code == 422
        error = response.get_json()["error"]
        assert error["code"] == "invalid_params" and "2026-W48" in error["fields"]["filter.week"]


# -- the table's export menu ------------------------------------------------------------------


class TestMenu:
    @pytest.fixture
    def logged_in(self, app, client, auth):
        with app.app_context():
            add_user()
            seed_lots(40)
        assert auth.login().status_code == 302
        return client

    def test_the_menu_posts_the_current_filters_with_three_formats(self, logged_in):
        # (An empty parameter is dropped by a redirect first: followed here.)
        page = page_of(logged_in.get("/nursery/potting-lots?pot_size=P9&q=", follow_redirects=True))
        form = page.find("form", id="export-form")[0]
        assert form["attrs"]["method"] == "post"
        assert form["attrs"]["action"] == "/nursery/potting-lots/export"
        hidden = {
            e["attrs"]["name"]: e["attrs"]["value"]
            for e in page.find("input")
            if e["in_form"] == "export-form"
        }
        assert hidden.pop("csrf_token", "") is not None and hidden == {"pot_size": "P9"}
        buttons = [b for b in page.find("button") if Page.form_of(b) == "export-form"]
        assert [b["attrs"]["value"] for b in buttons] == ["csv", "csv_semicolon", "xlsx"]
        assert all(b["attrs"]["type"] == "submit" and "disabled" not in b["attrs"] for b in buttons)
        assert page.find("summary")[-1]["text"].strip() == "Export"

    def test_the_menu_is_disabled_when_no_row_matches(self, logged_in):
        page = page_of(logged_in.get("/nursery/potting-lots?q=no+such+plant"))
        buttons = [b for b in page.find("button") if Page.form_of(b) == "export-form"]
        assert len(buttons) == 3 and all("disabled" in b["attrs"] for b in buttons)

    def test_the_page_has_no_inline_script_or_style(self, logged_in):
        html = logged_in.get("/nursery/potting-lots").get_data(as_text=True)
        assert "style=" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html)

    @pytest.mark.parametrize(
        "format, kind, params",
        [
            ("csv", CSV, {"filter": {"location": "Buitenveld A"}, "delimiter": ","}),
            ("csv_semicolon", CSV, {"filter": {"location": "Buitenveld A"}, "delimiter": ";"}),
            ("xlsx", XLSX, {"filter": {"location": "Buitenveld A"}}),
        ],
    )
    def test_each_format_starts_its_export_and_goes_to_the_job_page(
        self, app, logged_in, format, kind, params
    ):
        response = logged_in.post(
            "/nursery/potting-lots/export", data={"format": format, "location": "Buitenveld A"}
        )
        assert response.status_code == 303
        assert re.fullmatch(r"/jobs/[\w-]+", response.headers["Location"])
        with app.app_context():
            job = job_row(response.headers["Location"].rsplit("/", 1)[1])
            assert (job.kind, job.params) == (kind, params)

    def test_an_htmx_export_redirects_with_hx_redirect(self, logged_in):
        response = logged_in.post(
            "/nursery/potting-lots/export", data={"format": "xlsx"}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 204 and response.headers["HX-Redirect"].startswith("/jobs/")

    @pytest.mark.parametrize(
        "data, text",
        [
            ({"format": "csv", "week": "48"}, "is not like 2026-W48"),
            ({"format": "pdf"}, "Choose one of"),
        ],
    )
    def test_a_bad_request_goes_back_to_the_table_with_the_reason(self, app, logged_in, data, text):
        response = logged_in.post(
            "/nursery/potting-lots/export", data=data, headers={"Referer": "/nursery/potting-lots"}
        )
        assert response.status_code == 303
        assert text in logged_in.get(response.headers["Location"]).get_data(as_text=True)
        with app.app_context():
            assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 0

    def test_the_job_page_says_rows_and_filters_and_then_that_the_export_is_ready(
        self, app, logged_in, stub_worker
    ):
        response = logged_in.post(
            "/nursery/potting-lots/export", data={"format": "csv_semicolon", "pot_size": "P9"}
        )
        job_page = response.headers["Location"]
        with app.app_context():
            rows = job_row(job_page.rsplit("/", 1)[1]).progress_total
        text = " ".join(logged_in.get(job_page).get_data(as_text=True).split())
        assert f"{rows} rows · separated by semicolons · filters:" in text
        assert '<span class="chip">Pot size: P9</span>' in text
        stub_worker()
        page = page_of(logged_in.get(job_page))
        ready = " ".join(page.find("div", class_="ready")[0]["text"].split())
        assert "Your export is ready." in ready and f"{rows} rows and a header ·" in ready
        assert re.search(r"\d B|KB", ready)
        back = [a for a in page.find("a") if page.text(a) == "Back to the potting lots"]
        assert back and back[0]["attrs"]["href"] == "/nursery/potting-lots"

    def test_my_jobs_lists_the_export_in_one_line(self, app, logged_in, stub_worker):
        logged_in.post("/nursery/potting-lots/export", data={"format": "xlsx"})
        text = " ".join(logged_in.get("/jobs/").get_data(as_text=True).split())
        assert "40 rows · all potting lots" in text
