"""Lab exports (`protocols_csv`, `protocols_xlsx`, `reports_csv`): rows against the database for
each filter, the file formats, splitting and merging, refusals, and the protocols table."""

from __future__ import annotations

import io
import re
from datetime import date, datetime
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa
from flask import Flask

from tests.conftest import add_user
from tests.unit.test_exports import (
    Recorder,
    csv_rows,
    file_of,
    job_row,
    render,
    render_split,
    worker,
    xlsx_rows,
)
from tests.unit.test_ui import Page, page_of
from webapp import documents, jobs
from webapp.auth import create_token
from webapp.documents import lab_exports as module
from webapp.errors import PermanentError
from webapp.extensions import db
from webapp.lab.demo import seed_lab
from webapp.models import (
    Job,
    JobStatus,
    Protocol,
    ProtocolStatus,
    Report,
    ReportStatus,
    Veterinarian,
)

PROTOCOLS_CSV, PROTOCOLS_XLSX, REPORTS_CSV = "protocols_csv", "protocols_xlsx", "reports_csv"
KINDS = (PROTOCOLS_CSV, PROTOCOLS_XLSX, REPORTS_CSV)
TODAY = date(2026, 12, 1)  # the demo's protocols were received on the 20 days before
PROTOCOL_HEADER = [
    "number",
    "received_on",
    "status",
    "analysis_type",
    "animal_id",
    "species",
    "veterinarian",
    "clinic",
    "email",
    "report_status",
]
REPORT_HEADER = [
    "protocol_number",
    "received_on",
    "status",
    "version",
    "histopathologist",
    "diagnosis",
    "finalised_at",
    "pdf_sha256",
    "cassettes",
]
TRICKY = 'Carcinoma; "grado II", según Peña\nsegunda línea'
# One filter value per key and kind: each selects some rows but not all.
FILTERS: dict[str, dict[str, str]] = {
    PROTOCOLS_CSV: {
        "received_from": "2026-11-20",
        "received_to": "2026-11-15",
        "status": "processing",
        "analysis_type": "cytology",
    },
    REPORTS_CSV: {
        "received_from": "2026-11-20",
        "received_to": "2026-11-15",
        "status": "final",
        "analysis_type": "histopathology",
    },
}
FILTERS[PROTOCOLS_XLSX] = FILTERS[PROTOCOLS_CSV]


# -- data and what the files must hold ------------------------------------------------------------


def seed(count: int = 40) -> None:
    """`count` demo protocols in a spread of states (every 5th in process, every 7th reported
    with a final report), a first report with delimiters, quotes and a line break, and one
    protocol only announced (no number, no day, no report)."""
    seed_lab(count, today=TODAY)
    for protocol in db.session.scalars(sa.select(Protocol)):
        report = db.session.get(Report, protocol.id)
        if protocol.id % 5 == 0:
            protocol.status = ProtocolStatus.PROCESSING.value
        elif protocol.id % 7 == 0:
            protocol.status = ProtocolStatus.REPORTED.value
            report.status = ReportStatus.FINAL.value
            report.version = 2
            report.finalised_at = datetime(2026, 11, 28, 9, 30, 15, 123456)
            report.pdf_sha256 = f"{protocol.id:064x}"
    db.session.get(Report, 1).diagnosis = TRICKY
    vet = db.session.scalars(sa.select(Veterinarian).order_by(Veterinarian.id)).first()
    db.session.add(
        Protocol(
            veterinarian=vet,
            animal_id="=HYPERLINK(1)",  # looks like a formula: stays text
            species="Felino",
            analysis_type="cytology",
        )
    )
    db.session.commit()


def _selected(protocol: Protocol, status: str, where: dict[str, str]) -> bool:
    day = protocol.received_on
    if "received_from" in where and (
        day is None or day < date.fromisoformat(where["received_from"])
    ):
        return False
    if "received_to" in where and (day is None or day > date.fromisoformat(where["received_to"])):
        return False
    if "status" in where and status != where["status"]:
        return False
    return "analysis_type" not in where or protocol.analysis_type == where["analysis_type"]


def protocol_rows(**where: str) -> list[tuple[Any, ...]]:
    """The protocols the filter selects, in id order, as the export's columns (read and
    filtered here in Python, independently of the kind's own query)."""
    db.session.expire_all()
    rows = []
    for p in db.session.scalars(sa.select(Protocol).order_by(Protocol.id)):
        if _selected(p, p.status, where):
            report = db.session.get(Report, p.id)
            vet = p.veterinarian
            rows.append(
                (p.number, p.received_on, p.status, p.analysis_type, p.animal_id, p.species)
                + (vet.name, vet.clinic, vet.email, report.status if report else None)
            )
    return rows


def report_rows(**where: str) -> list[tuple[Any, ...]]:
    """The reports the filter selects (`status` is the report's), in id order."""
    db.session.expire_all()
    rows = []
    for r in db.session.scalars(sa.select(Report).order_by(Report.id)):
        p = r.protocol
        if _selected(p, r.status, where):
            finalised = (
                r.finalised_at.isoformat(timespec="seconds") + "Z" if r.finalised_at else None
            )
            rows.append(
                (p.number, p.received_on, r.status, r.version, r.histopathologist, r.diagnosis)
                + (finalised, r.pdf_sha256, len(r.cassettes))
            )
    return rows


def expected(kind: str, **where: str) -> list[tuple[Any, ...]]:
    return report_rows(**where) if kind == REPORTS_CSV else protocol_rows(**where)


def as_csv(row: tuple[Any, ...]) -> list[str]:
    return [v.isoformat() if isinstance(v, date) else "" if v is None else str(v) for v in row]


def as_xlsx(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(datetime(v.year, v.month, v.day) if isinstance(v, date) else v for v in row)


def file_rows(kind: str, data_path: Any, delimiter: str = ",") -> list[Any]:
    """The file's rows, header first, as the `as_csv`/`as_xlsx` forms of the database rows."""
    if kind == PROTOCOLS_XLSX:
        return xlsx_rows(data_path)
    return csv_rows(data_path.read_bytes(), delimiter)


def as_file(kind: str, rows: list[tuple[Any, ...]]) -> list[Any]:
    return [as_xlsx(r) for r in rows] if kind == PROTOCOLS_XLSX else [as_csv(r) for r in rows]


def header(kind: str) -> Any:
    names = REPORT_HEADER if kind == REPORTS_CSV else PROTOCOL_HEADER
    return tuple(names) if kind == PROTOCOLS_XLSX else names


def job_count() -> int:
    return db.session.scalar(sa.select(sa.func.count(Job.id))) or 0


@pytest.fixture
def lab(ctx: Flask) -> None:
    seed()


# -- rows, per kind and filter --------------------------------------------------------------------


class TestRows:
    @pytest.mark.parametrize("kind", KINDS)
    def test_an_empty_filter_exports_every_row_in_id_order(self, ctx, staff, lab, tmp_path, kind):
        job, _ = jobs.submit(staff, kind, {"filter": {}})
        rows = file_rows(kind, render(kind, job, tmp_path))
        assert rows[0] == header(kind)
        assert rows[1:] == as_file(kind, expected(kind))
        assert job.progress_total == len(rows) - 1 == (41 if kind != REPORTS_CSV else 40)

    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("key", ["received_from", "received_to", "status", "analysis_type"])
    def test_each_filter_key_selects_the_rows_the_database_has(
        self, ctx, staff, lab, tmp_path, kind, key
    ):
        where = {key: FILTERS[kind][key]}
        job, _ = jobs.submit(staff, kind, {"filter": where})
        rows = expected(kind, **where)
        assert 0 < len(rows) < len(expected(kind)) and job.progress_total == len(rows)
        assert file_rows(kind, render(kind, job, tmp_path))[1:] == as_file(kind, rows)

    @pytest.mark.parametrize("kind", KINDS)
    def test_filters_combine(self, ctx, staff, lab, tmp_path, kind):
        where = {
            "received_from": "2026-11-12",
            "received_to": "2026-11-25",
            "analysis_type": "histopathology",
        }
        job, _ = jobs.submit(staff, kind, {"filter": where})
        assert file_rows(kind, render(kind, job, tmp_path))[1:] == as_file(
            kind, expected(kind, **where)
        )

    def test_a_protocol_only_announced_has_blank_number_day_and_report(
        self, ctx, staff, lab, tmp_path
    ):
        job, _ = jobs.submit(staff, PROTOCOLS_CSV, {"filter": {"status": "registered"}})
        rows = csv_rows(render(PROTOCOLS_CSV, job, tmp_path).read_bytes())
        assert len(rows) == 2 and rows[1][:3] == ["", "", "registered"] and rows[1][-1] == ""

    def test_a_final_report_has_its_version_timestamp_hash_and_cassettes(
        self, ctx, staff, lab, tmp_path
    ):
        job, _ = jobs.submit(staff, REPORTS_CSV, {"filter": {"status": "final"}})
        row = csv_rows(render(REPORTS_CSV, job, tmp_path).read_bytes())[1]
        assert row[2:4] == ["final", "2"] and row[6] == "2026-11-28T09:30:15Z"
        assert re.fullmatch(r"0+7", row[7]) and int(row[8]) == len(
            db.session.get(Report, 7).cassettes
        )


# -- the formats ----------------------------------------------------------------------------------


class TestFormats:
    @pytest.mark.parametrize("kind", [PROTOCOLS_CSV, REPORTS_CSV])
    def test_a_csv_starts_with_a_bom_and_its_header(self, ctx, staff, lab, tmp_path, kind):
        job, _ = jobs.submit(staff, kind, {"filter": {}})
        data = render(kind, job, tmp_path).read_bytes()
        assert data.startswith(b"\xef\xbb\xbf" + ",".join(header(kind)).encode() + b"\r\n")

    @pytest.mark.parametrize("kind", [PROTOCOLS_CSV, REPORTS_CSV])
    def test_semicolons_are_asked_for_with_the_delimiter(self, ctx, staff, lab, tmp_path, kind):
        job, _ = jobs.submit(staff, kind, {"filter": {}, "delimiter": ";"})
        data = render(kind, job, tmp_path).read_bytes()
        assert data.splitlines()[0] == b"\xef\xbb\xbf" + ";".join(header(kind)).encode()
        assert csv_rows(data, ";")[1:] == as_file(kind, expected(kind))

    @pytest.mark.parametrize("delimiter", [",", ";"])
    def test_delimiters_quotes_and_line_breaks_in_a_diagnosis_are_quoted(
        self, ctx, staff, lab, tmp_path, delimiter
    ):
        job, _ = jobs.submit(staff, REPORTS_CSV, {"filter": {}, "delimiter": delimiter})
        data = render(REPORTS_CSV, job, tmp_path).read_bytes()
        assert '"Carcinoma; ""grado II"", según Peña\nsegunda línea"' in data.decode("utf-8")
        assert csv_rows(data, delimiter)[1][5] == TRICKY

    def test_the_workbook_has_dates_as_dates_and_formulas_as_text(self, ctx, staff, lab, tmp_path):
        job, _ = jobs.submit(staff, PROTOCOLS_XLSX, {"filter": {}})
        book = openpyxl.load_workbook(render(PROTOCOLS_XLSX, job, tmp_path))
        sheet = book.active
        assert sheet.title == "protocols" and sheet.freeze_panes == "A2"
        assert all(cell.font.bold for cell in sheet[1])
        assert sheet["B2"].is_date and sheet["B2"].number_format == "yyyy-mm-dd"
        last = sheet.max_row  # the protocol only announced
        assert sheet[f"E{last}"].data_type == "s" and sheet[f"E{last}"].value == "=HYPERLINK(1)"
        assert sheet[f"A{last}"].value is None and sheet[f"J{last}"].value is None
        book.close()

    def test_files_are_named_after_the_day_they_were_asked_for(self, ctx, staff, lab):
        job, _ = jobs.submit(staff, PROTOCOLS_CSV, {"filter": {}})
        job.created_at = datetime(2026, 12, 1, 23, 30)  # UTC: already 2 December in Amsterdam
        assert documents.get(PROTOCOLS_CSV).file_name(job) == "protocols_2026-12-02.csv"
        assert documents.get(PROTOCOLS_XLSX).file_name(job) == "protocols_2026-12-02.xlsx"
        assert documents.get(REPORTS_CSV).file_name(job) == "reports_2026-12-02.csv"

    def test_the_kinds_count_rows_and_staff_and_admins_may_start_them(self, ctx):
        for name in KINDS:
            kind = documents.get(name)
            assert kind.unit == "row" and kind.roles == {"staff", "admin"}
            assert kind.limit_key == "MAX_EXPORT_ROWS"


# -- split and merge ------------------------------------------------------------------------------


class TestSplit:
    @pytest.mark.parametrize("kind", KINDS)
    def test_a_split_export_merged_is_byte_for_byte_the_whole_one(
        self, ctx, staff, lab, tmp_path, kind
    ):
        job, _ = jobs.submit(staff, kind, {"filter": {}})
        whole = render(kind, job, tmp_path / "whole").read_bytes()
        merged = render_split(kind, job, tmp_path / "split", size=9).read_bytes()
        assert merged == whole

    @pytest.mark.parametrize("kind", KINDS)
    def test_a_big_export_is_split_by_the_engine_into_the_file_one_render_makes(
        self, make_app, tmp_path, kind
    ):
        app = make_app(CHUNK_ROWS=12, CSV_CHUNK_ROWS=12)
        with app.app_context():
            staff = add_user()
            seed()
            job, _ = jobs.submit(staff, kind, {"filter": {}})
            whole = render(kind, job, tmp_path).read_bytes()
            with worker(app) as drain:
                drain()
            row = job_row(job.id)
            assert row.chunks_total == 4 and row.progress_done == row.progress_total
            assert file_of(job.id).read_bytes() == whole

    def test_small_exports_are_not_split(self, ctx, staff, lab):
        job, _ = jobs.submit(staff, PROTOCOLS_XLSX, {"filter": {}})
        assert documents.get(PROTOCOLS_XLSX).split(job, ctx.config) == []


# -- parameters -----------------------------------------------------------------------------------


class TestParams:
    def test_filters_are_kept_normalised_and_the_same_export_is_one_job(self, ctx, staff, lab):
        job, created = jobs.submit(
            staff,
            REPORTS_CSV,
            {"filter": {"status": "final", "received_from": "", "received_to": None}},
        )
        assert job.params == {"filter": {"status": "final"}, "delimiter": ","}
        assert job.summary["filter"] == {"status": "final"}
        again, again_created = jobs.submit(staff, REPORTS_CSV, {"filter": {"status": " final "}})
        assert created and not again_created and again.id == job.id

    def test_no_params_export_everything(self, ctx, staff, lab):
        job, _ = jobs.submit(staff, PROTOCOLS_XLSX, {})
        assert job.params == {"filter": {}} and job.progress_total == 41

    @pytest.mark.parametrize(
        "kind, params, field, code",
        [
            (PROTOCOLS_CSV, {"filter": {"colour": "red"}}, "filter.colour", "filter_unknown"),
            (REPORTS_CSV, {"filter": {"vet": "x"}}, "filter.vet", "filter_unknown"),
            (PROTOCOLS_XLSX, {"filter": "all"}, "filter", "field_object"),
            (
                PROTOCOLS_CSV,
                {"filter": {"received_from": "1/12/2026"}},
                "filter.received_from",
                "field_date",
            ),
            (
                REPORTS_CSV,
                {"filter": {"received_to": 20261201}},
                "filter.received_to",
                "field_date",
            ),
            (
                PROTOCOLS_XLSX,
                {"filter": {"received_from": "2026-11-20", "received_to": "2026-11-10"}},
                "filter.received_to",
                "dates_reversed",
            ),
            (PROTOCOLS_CSV, {"filter": {"status": "final"}}, "filter.status", "field_choice"),
            (REPORTS_CSV, {"filter": {"status": "received"}}, "filter.status", "field_choice"),
            (
                PROTOCOLS_XLSX,
                {"filter": {"analysis_type": "biopsy"}},
                "filter.analysis_type",
                "field_choice",
            ),
            (PROTOCOLS_CSV, {"filter": {}, "delimiter": "|"}, "delimiter", "field_choice"),
            (PROTOCOLS_XLSX, {"filter": {}, "delimiter": ";"}, "delimiter", "field_unknown"),
            (
                PROTOCOLS_CSV,
                {"filter": {"received_from": "2020-01-01", "received_to": "2020-01-31"}},
                "filter",
                "no_protocols_match",
            ),
            (
                REPORTS_CSV,
                {
                    "filter": {
                        "status": "final",
                        "analysis_type": "cytology",
                        "received_to": "2026-11-01",
                    }
                },
                "filter",
                "no_reports_match",
            ),
        ],
    )
    def test_bad_params_are_refused_with_the_field_named_and_nothing_queued(
        self, ctx, staff, lab, kind, params, field, code
    ):
        with pytest.raises(jobs.InvalidParams) as info:
            jobs.submit(staff, kind, params)
        assert info.value.status == 422 and info.value.fields[field].code == code
        assert job_count() == 0

    def test_the_status_choices_are_the_rows_own_states(self, ctx, staff, lab):
        with pytest.raises(jobs.InvalidParams) as info:
            jobs.submit(staff, REPORTS_CSV, {"filter": {"status": "received"}})
        assert info.value.fields["filter.status"].params == {"choices": ["draft", "final"]}

    def test_an_export_over_the_row_limit_is_refused(self, make_app):
        app = make_app(MAX_EXPORT_ROWS=30)
        with app.app_context():
            staff = add_user()
            seed()
            with pytest.raises(jobs.InvalidParams) as info:
                jobs.submit(staff, PROTOCOLS_CSV, {"filter": {}})
            assert info.value.msg.code == "too_many" and info.value.msg.params["limit"] == 30
            assert jobs.submit(staff, REPORTS_CSV, {"filter": {"status": "final"}})[1]

    @pytest.mark.parametrize("kind", KINDS)
    def test_prepare_counts_and_versions_the_rows_in_one_query(self, ctx, staff, lab, kind):
        documents_kind = documents.get(kind)
        statements: list[str] = []

        def record(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
            statements.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", record)
        try:
            prepared = documents_kind.prepare(
                documents_kind.parse({"filter": {"analysis_type": "cytology"}}), staff
            )
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", record)
        queries = [q for q in statements if q.upper() not in ("BEGIN", "COMMIT", "ROLLBACK")]
        assert len(queries) == 1 and "count(" in queries[0].lower()
        assert prepared.total == len(expected(kind, analysis_type="cytology"))

    @pytest.mark.parametrize("kind", [PROTOCOLS_XLSX, REPORTS_CSV])
    def test_an_edited_protocol_or_report_changes_the_data_version(self, ctx, staff, lab, kind):
        documents_kind = documents.get(kind)

        def version() -> str:
            return documents_kind.prepare(documents_kind.parse({"filter": {}}), staff).data_version

        before = version()
        db.session.get(Protocol, 3).species = "Hurón"
        db.session.commit()
        protocol_edited = version()
        db.session.get(Report, 4).diagnosis = "Lipoma infiltrativo, revisado."
        db.session.commit()
        assert len({before, protocol_edited, version()}) == 3


# -- rendering ------------------------------------------------------------------------------------


class TestRender:
    def test_progress_counts_rows_while_writing(self, ctx, staff, lab, tmp_path, monkeypatch):
        monkeypatch.setattr(module, "BATCH", 15)
        job, _ = jobs.submit(staff, PROTOCOLS_CSV, {"filter": {}})
        recorder = Recorder(tmp_path)
        documents.get(PROTOCOLS_CSV).render(job, recorder, tmp_path / "out.csv", None)
        assert [c[0] for c in recorder.calls if c[1] == "writing_rows"] == [0, 15, 30, 41]
        assert recorder.calls[-1] == (41, "writing_file", True)

    @pytest.mark.parametrize("kind", KINDS)
    def test_rows_changed_after_the_submit_fail_the_export_saying_so(
        self, ctx, staff, lab, tmp_path, kind
    ):
        job, _ = jobs.submit(staff, kind, {"filter": {}})
        db.session.get(Report, 2).status = ReportStatus.FINAL.value  # a report finalised meanwhile
        db.session.commit()
        with pytest.raises(PermanentError) as info:
            render(kind, job, tmp_path)
        assert info.value.code == "lab_rows_changed"


# -- through the worker and the API ---------------------------------------------------------------


class TestThroughTheWorker:
    def test_a_reports_export_runs_to_a_downloadable_file(self, ctx, staff, lab, stub_worker):
        job, _ = jobs.submit(staff, REPORTS_CSV, {"filter": {}, "delimiter": ";"})
        stub_worker()
        row = job_row(job.id)
        assert row.status == JobStatus.DONE and row.progress_done == row.progress_total == 40
        assert row.unit == "row" and row.file_name.startswith("reports_")
        assert row.artifact.media_type.startswith("text/csv")
        assert csv_rows(file_of(job.id).read_bytes(), ";")[1:] == as_file(
            REPORTS_CSV, report_rows()
        )

    @pytest.fixture
    def token(self, app: Flask) -> str:
        with app.app_context():
            user = add_user()
            seed()
            return create_token(user)

    def test_an_xlsx_export_through_the_api_serves_a_workbook(
        self, app, client, token, stub_worker
    ):
        headers = {"Authorization": f"Bearer {token}"}
        response = client.post(
            "/api/v1/jobs",
            headers=headers,
            json={"kind": PROTOCOLS_XLSX, "params": {"filter": {"status": "processing"}}},
        )
        assert response.status_code == 202, response.get_json()
        stub_worker()
        file = client.get(f"/api/v1/jobs/{response.get_json()['id']}/file", headers=headers)
        assert file.status_code == 200 and file.mimetype == documents.get(PROTOCOLS_XLSX).media_type
        assert re.search(
            r"filename=\"protocols_\d{4}-\d{2}-\d{2}\.xlsx\"", file.headers["Content-Disposition"]
        )
        book = openpyxl.load_workbook(io.BytesIO(file.data), read_only=True)
        rows = [tuple(r) for r in book.active.iter_rows(values_only=True)]
        book.close()
        with app.app_context():
            assert rows[1:] == as_file(PROTOCOLS_XLSX, protocol_rows(status="processing"))

    def test_an_unknown_filter_key_is_422_naming_it(self, app, client, token):
        response = client.post(
            "/api/v1/jobs",
            headers={"Authorization": f"Bearer {token}"},
            json={"kind": REPORTS_CSV, "params": {"filter": {"vet": "Peñalver"}}},
        )
        assert response.status_code == 422
        error = response.get_json()["error"]
        assert error["code"] == "invalid_params" and "vet" in error["fields"]["filter.vet"]
        with app.app_context():
            assert job_count() == 0


# -- the protocols table --------------------------------------------------------------------------


def numbers(page: Page) -> list[str]:
    """The protocol numbers the table shows, top to bottom."""
    links = [
        a for a in page.find("a") if re.fullmatch(r"/lab/protocols/\d+", a["attrs"].get("href", ""))
    ]
    return [page.text(a) for a in links]


def newest_first(rows: list[tuple[Any, ...]]) -> list[str]:
    """`protocol_rows` (id order) as the table orders them: newest received first."""
    indexed = list(enumerate(rows))
    indexed.sort(
        key=lambda item: (item[1][1] is None, -(item[1][1] or date.min).toordinal(), -item[0])
    )
    return [row[0] or "—" for _index, row in indexed]


class TestTable:
    @pytest.fixture
    def logged_in(self, app, client, auth):
        with app.app_context():
            add_user()
            seed(60)
        assert auth.login().status_code == 302
        return client

    def test_it_needs_a_login(self, client):
        response = client.get("/lab/protocols")
        assert response.status_code == 302 and "/login" in response.headers["Location"]

    def test_it_shows_50_a_page_newest_received_first(self, app, logged_in):
        first = page_of(logged_in.get("/lab/protocols"))
        second = page_of(logged_in.get("/lab/protocols?page=2"))
        with app.app_context():
            order = newest_first(protocol_rows())
        assert numbers(first) == order[:50] and numbers(second) == order[50:]
        assert "61 protocols · page 1 of 2" in " ".join(
            first.find("p", class_="row-count")[0]["text"].split()
        )

    @pytest.mark.parametrize(
        "key, value",
        [
            ("received_from", "2026-11-20"),
            ("received_to", "2026-11-15"),
            ("status", "processing"),
            ("analysis_type", "cytology"),
        ],
    )
    def test_each_filter_shows_the_rows_it_selects(self, app, logged_in, key, value):
        page = page_of(logged_in.get(f"/lab/protocols?{key}={value}"))
        with app.app_context():
            order = newest_first(protocol_rows(**{key: value}))
        assert 0 < len(order) < 61 and numbers(page) == order

    def test_a_bad_filter_says_why_and_shows_nothing(self, logged_in):
        page = page_of(
            logged_in.get("/lab/protocols?received_from=2026-11-20&received_to=2026-11-01")
        )
        assert numbers(page) == []
        assert "The end date is before the start date." in page.text(
            page.find("p", id="filter-error")[0]
        )
        assert page.find("input", name="received_to")[0]["attrs"].get("aria-invalid") == "true"
        buttons = [b for b in page.find("button") if Page.form_of(b) == "export-form"]
        assert buttons and all("disabled" in b["attrs"] for b in buttons)

    def test_no_match_says_so_and_offers_to_clear(self, logged_in):
        page = page_of(logged_in.get("/lab/protocols?received_to=2020-01-01"))
        assert numbers(page) == [] and page.find("p", class_="empty-title")
        assert "No protocols match these filters." in page.text(
            page.find("p", class_="empty-title")[0]
        )

    def test_with_no_protocols_at_all_it_says_where_they_come_from(self, client, auth, app):
        with app.app_context():
            add_user()
        auth.login()
        page = page_of(client.get("/lab/protocols"))
        assert page.text(page.find("p", class_="empty-title")[0]) == "There are no protocols yet."

    def test_the_lab_navigation_links_the_table(self, logged_in):
        page = page_of(logged_in.get("/lab/reports"))
        assert [a for a in page.find("a", href="/lab/protocols") if page.text(a) == "Protocols"]

    def test_the_export_menu_posts_the_current_filters_in_three_formats(self, logged_in):
        page = page_of(logged_in.get("/lab/protocols?analysis_type=cytology&status="))
        form = page.find("form", id="export-form")[0]
        assert (
            form["attrs"]["method"] == "post" and form["attrs"]["action"] == "/lab/protocols/export"
        )
        hidden = {
            e["attrs"]["name"]: e["attrs"]["value"]
            for e in page.find("input")
            if e["in_form"] == "export-form"
        }
        assert hidden.pop("csrf_token") and hidden == {"analysis_type": "cytology"}
        buttons = [b for b in page.find("button") if Page.form_of(b) == "export-form"]
        assert [b["attrs"]["value"] for b in buttons] == ["csv", "xlsx", "reports_csv"]
        assert all("disabled" not in b["attrs"] for b in buttons)

    @pytest.mark.parametrize(
        "format, kind, params",
        [
            (
                "csv",
                PROTOCOLS_CSV,
                {
                    "filter": {"status": "processing", "received_from": "2026-11-15"},
                    "delimiter": ",",
                },
            ),
            (
                "xlsx",
                PROTOCOLS_XLSX,
                {"filter": {"status": "processing", "received_from": "2026-11-15"}},
            ),
            # A protocol's state is no report's: the reports export leaves it out.
            (
                "reports_csv",
                REPORTS_CSV,
                {"filter": {"received_from": "2026-11-15"}, "delimiter": ","},
            ),
        ],
    )
    def test_each_format_starts_its_export_and_goes_to_the_job_page(
        self, app, logged_in, format, kind, params
    ):
        response = logged_in.post(
            "/lab/protocols/export",
            data={"format": format, "status": "processing", "received_from": "2026-11-15"},
        )
        assert response.status_code == 303
        assert re.fullmatch(r"/jobs/[\w-]+", response.headers["Location"])
        with app.app_context():
            job = job_row(response.headers["Location"].rsplit("/", 1)[1])
            assert (job.kind, job.params) == (kind, params)

    @pytest.mark.parametrize(
        "data, text",
        [
            ({"format": "csv", "received_from": "yesterday"}, "Enter a date like 2026-12-01."),
            ({"format": "xlsx", "received_to": "2020-01-01"}, "No protocols match these filters"),
            ({"format": "pdf"}, "Choose one of"),
        ],
    )
    def test_a_bad_request_goes_back_to_the_table_with_the_reason(self, app, logged_in, data, text):
        response = logged_in.post(
            "/lab/protocols/export", data=data, headers={"Referer": "/lab/protocols"}
        )
        assert response.status_code == 303
        assert text in logged_in.get(response.headers["Location"]).get_data(as_text=True)
        with app.app_context():
            assert job_count() == 0

    def test_the_job_page_shows_the_filters_then_that_the_export_is_ready(
        self, app, logged_in, stub_worker
    ):
        response = logged_in.post(
            "/lab/protocols/export", data={"format": "csv", "analysis_type": "cytology"}
        )
        job_page = response.headers["Location"]
        with app.app_context():
            rows = job_row(job_page.rsplit("/", 1)[1]).progress_total
        text = " ".join(logged_in.get(job_page).get_data(as_text=True).split())
        assert f"{rows} rows · filters:" in text
        assert '<span class="chip">Analysis: Cytology</span>' in text
        stub_worker()
        page = page_of(logged_in.get(job_page))
        ready = " ".join(page.find("div", class_="ready")[0]["text"].split())
        assert "Your export is ready." in ready and f"{rows} rows and a header ·" in ready
        back = [a for a in page.find("a") if page.text(a) == "Back to the protocols"]
        assert back and back[0]["attrs"]["href"] == "/lab/protocols"

    def test_my_jobs_lists_an_unfiltered_export_in_one_line(self, logged_in):
        logged_in.post("/lab/protocols/export", data={"format": "reports_csv"})
        text = " ".join(logged_in.get("/jobs/").get_data(as_text=True).split())
        assert "60 rows · all reports" in text
