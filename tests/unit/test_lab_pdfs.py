"""The lab's report and work order PDFs: pages, repeated table headings, footers, diacritics,
determinism, the signature kept whole, totals, notes printed in full, the page estimate."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from flask_babel import force_locale

from tests.conftest import app_config
from webapp import create_app
from webapp.lab.pdfs import (
    Cassette,
    ReportData,
    WorkOrderData,
    WorkOrderLine,
    estimate_report_pages,
    render_report,
    render_work_order,
)

PNG_DIR = Path("/tmp/labpdf")
MM = 72 / 25.4
OBSERVATION = (
    "Mucosa gástrica con infiltrado linfoplasmocitario moderado en la lámina propia, glándulas "
    "conservadas y ausencia de displasia; se observan folículos linfoides reactivos. "
)
SIGNATURE = ("Dr. Joost van der Müller", "Histopathologist", "Validated electronically on")


@pytest.fixture(autouse=True)
def lab(tmp_path: Path) -> Iterator[None]:
    """An app context (gettext, dates, money) in English; tests that need Spanish nest one."""
    with create_app(app_config(tmp_path / "data")).app_context(), force_locale("en"):
        yield


def cassettes(count: int) -> tuple[Cassette, ...]:
    return tuple(
        Cassette(f"K{n:02d}", "Estómago, cuerpo", OBSERVATION * (1 + n % 3))
        for n in range(1, count + 1)
    )


def report(count: int = 3, **changes: object) -> ReportData:
    data = ReportData(
        lab_name="Laboratorio de Anatomía Patológica Veterinaria",
        lab_address="Calle Mayor 12, 28013 Madrid · +34 910 000 000",
        protocol_number="HP 26/0001",
        received_on=date(2026, 11, 20),
        report_date=date(2026, 12, 1),
        veterinarian="Dra. Begoña Ibáñez",
        clinic="Dierenkliniek Vrĳdag & Müller",
        veterinarian_email="begona@clinica.es",
        animal_id="Luna",
        species="Ñandú (Rhea americana)",
        analysis="Histopatología",
        clinical_history="Hembra de 4 años con pérdida de peso progresiva desde hace tres semanas.",
        cassettes=cassettes(count),
        diagnosis="Gastritis linfoplasmocitaria crónica moderada, sin evidencia de neoplasia.",
        histopathologist="Dr. Joost van der Müller",
        version=2,
    )
    return dataclasses.replace(data, **changes)  # type: ignore[arg-type]


def work_order(**changes: object) -> WorkOrderData:
    data = WorkOrderData(
        lab_name="Laboratorio de Anatomía Patológica Veterinaria",
        lab_address="Calle Mayor 12, 28013 Madrid",
        work_order_id=417,
        version=3,
        created_on=date(2026, 11, 20),
        updated_on=date(2026, 12, 1),
        veterinarian="Dra. Begoña Ibáñez",
        clinic="Clínica Veterinaria Ñandú",
        veterinarian_email="begona@clinica.es",
        lines=tuple(
            WorkOrderLine(f"HP 26/000{n}", "Luna", "Perro", "Histopatología", n, 4550 * n)
            for n in range(1, 5)
        ),
        notes="Entregar por la mañana.",
    )
    return dataclasses.replace(data, **changes)  # type: ignore[arg-type]


def page_texts(path: Path) -> list[str]:
    document = pdfium.PdfDocument(str(path))
    try:
        return [page.get_textpage().get_text_range() for page in document]
    finally:
        document.close()


def rightmost_char_mm(path: Path) -> float:
    """How far from the left edge the rightmost character of any page reaches, in mm."""
    document = pdfium.PdfDocument(str(path))
    try:
        right = 0.0
        for page in document:
            text = page.get_textpage()
            for i in range(text.count_chars()):
                if not text.get_text_range(i, 1).isspace():
                    right = max(right, text.get_charbox(i)[2] / MM)
        return right
    finally:
        document.close()


def save_png(path: Path, index: int, target: Path) -> None:
    document = pdfium.PdfDocument(str(path))
    try:
        document[index].render(scale=1.5).to_pil().save(target)
    finally:
        document.close()


class TestReport:
    def test_a_long_report_spans_pages_and_prints_every_cassette(self, tmp_path):
        out = tmp_path / "report.pdf"
        pages = render_report(report(60), out)
        texts = page_texts(out)
        assert pages == len(texts) >= 2
        found = re.findall(r"\bK\d\d\b", "\n".join(texts))
        assert sorted(found) == [f"K{n:02d}" for n in range(1, 61)]

    def test_the_table_repeats_its_heading_row_on_every_page_it_continues_on(self, tmp_path):
        out = tmp_path / "report.pdf"
        render_report(report(60), out)
        table_pages = [text for text in page_texts(out) if re.search(r"\bK\d\d\b", text)]
        assert len(table_pages) >= 2
        for text in table_pages:
            first_row = re.search(r"\bK\d\d\b", text)
            assert first_row
            assert re.search(r"Cassette\s+Tissue\s+Observation", text[: first_row.start()])

    def test_every_page_says_page_x_of_the_total_and_the_protocol(self, tmp_path):
        out = tmp_path / "report.pdf"
        pages = render_report(report(60), out)
        for number, text in enumerate(page_texts(out), start=1):
            assert f"Page {number} of {pages}" in text
            assert text.count("HP 26/0001") >= 2  # the header's "Protocol …" and the footer

    def test_spanish_and_dutch_diacritics_print(self, tmp_path):
        out = tmp_path / "report.pdf"
        with force_locale("es"):
            render_report(report(), out)
        text = page_texts(out)[0]
        for word in ("Ñandú", "Müller", "Begoña", "Ibáñez", "Vrĳdag", "Anatomía"):
            assert word in text

    def test_the_labels_follow_the_locale(self, tmp_path):
        out = tmp_path / "report.pdf"
        with force_locale("es"):
            render_report(report(), out)
        text = page_texts(out)[0]
        assert "1 de diciembre de 2026" in text
        assert "Page 1 of" not in text

    def test_the_same_data_gives_the_same_bytes(self, tmp_path):
        first, second = tmp_path / "first.pdf", tmp_path / "second.pdf"
        render_report(report(20), first)
        render_report(report(20), second)
        assert first.read_bytes() == second.read_bytes()
        render_report(report(20, report_date=date(2026, 12, 2)), second)
        assert first.read_bytes() != second.read_bytes()

    def test_the_signature_block_ends_the_last_page(self, tmp_path):
        out = tmp_path / "report.pdf"
        render_report(report(60), out)
        last = page_texts(out)[-1]
        for text in (*SIGNATURE, "December 1, 2026", "Report version 2"):
            assert text in last

    @pytest.mark.parametrize("lines", range(0, 40, 3))
    def test_the_signature_block_is_never_split_across_pages(self, tmp_path, lines):
        # Given diagnoses of growing length, so the signature meets the page end somewhere
        diagnosis = "\n".join(f"Diagnosis line {n}." for n in range(lines))
        out = tmp_path / "report.pdf"
        # When the report is rendered
        render_report(report(4, diagnosis=diagnosis), out)
        # Then all of the signature is on the last page
        last = page_texts(out)[-1]
        assert all(text in last for text in (*SIGNATURE, "Report version 2"))

    def test_no_history_and_no_cassettes_print_placeholders(self, tmp_path):
        out = tmp_path / "report.pdf"
        render_report(report(0, clinical_history="  "), out)
        text = page_texts(out)[0]
        assert re.search(r"Clinical history\s+—", text)
        assert re.search(r"Cassettes\s+No cassettes recorded\.", text)
        assert "Observation" not in text

    def test_progress_reports_every_page_in_order(self, tmp_path):
        calls: list[int] = []
        pages = render_report(report(60), tmp_path / "report.pdf", calls.append)
        assert calls == sorted(calls)
        assert set(calls) == set(range(1, pages + 1))

    def test_no_text_runs_past_the_right_margin(self, tmp_path):
        out = tmp_path / "report.pdf"
        render_report(report(60), out)
        assert rightmost_char_mm(out) <= 210 - 18 + 0.5


class TestEstimate:
    def test_a_big_report_is_estimated_at_several_pages_close_to_the_real_count(self, tmp_path):
        data = report(60)
        chars = sum(len(c.observation) for c in data.cassettes)
        chars += len(data.clinical_history) + len(data.diagnosis)
        estimate = estimate_report_pages(60, chars)
        assert estimate >= 2
        assert abs(estimate - render_report(data, tmp_path / "report.pdf")) <= 1

    def test_a_small_report_is_estimated_at_one_page(self):
        assert estimate_report_pages(3, 600) == 1

    def test_nothing_is_estimated_at_one_page(self):
        assert estimate_report_pages(0, 0) == 1


class TestWorkOrder:
    def test_the_total_is_the_sum_of_the_lines(self, tmp_path):
        out = tmp_path / "order.pdf"
        render_work_order(work_order(), out)
        text = page_texts(out)[0]
        for price in ("€45.50", "€91.00", "€136.50", "€182.00"):
            assert price in text
        assert re.search(r"Total\s+€455\.00", text)

    def test_it_names_the_order_its_version_and_dates(self, tmp_path):
        out = tmp_path / "order.pdf"
        render_work_order(work_order(), out)
        text = page_texts(out)[0]
        assert "Work order 417" in text
        assert re.search(r"Created Nov 20, 2026.*Last changed Dec 1, 2026.*Version 3", text)

    def test_long_notes_with_newlines_are_printed_in_full(self, tmp_path):
        notes = "\n".join(
            f"Nota {n:03d}: revisar la muestra con el Dr. Müller." for n in range(150)
        )
        out = tmp_path / "order.pdf"
        pages = render_work_order(work_order(notes=notes), out)
        texts = page_texts(out)
        assert pages == len(texts) >= 2
        found = re.findall(r"Nota (\d{3}):", "\n".join(texts))
        assert found == [f"{n:03d}" for n in range(150)]
        for number, text in enumerate(texts, start=1):
            assert f"Page {number} of {pages}" in text

    def test_the_same_data_gives_the_same_bytes(self, tmp_path):
        first, second = tmp_path / "first.pdf", tmp_path / "second.pdf"
        render_work_order(work_order(), first)
        render_work_order(work_order(), second)
        assert first.read_bytes() == second.read_bytes()


def test_the_pages_render_to_pictures(tmp_path):
    """Renders what a reviewer looks at (/tmp/labpdf/*.png) and checks the pictures have ink."""
    PNG_DIR.mkdir(exist_ok=True)
    big, order = tmp_path / "report.pdf", tmp_path / "order.pdf"
    with force_locale("es"):
        pages = render_report(report(60), big)
        render_work_order(work_order(notes="Primera línea.\nSegunda línea."), order)
    shots = {
        PNG_DIR / "report-first.png": (big, 0),
        PNG_DIR / "report-last.png": (big, pages - 1),
        PNG_DIR / "work-order.png": (order, 0),
    }
    for target, (path, index) in shots.items():
        save_png(path, index, target)
        document = pdfium.PdfDocument(str(path))
        try:
            image = document[index].render(scale=1.5, grayscale=True).to_pil().convert("L")
        finally:
            document.close()
        assert image.size == (round(210 * MM * 1.5), round(297 * MM * 1.5))
        assert image.getextrema()[0] < 60  # black text is there, not a blank page
