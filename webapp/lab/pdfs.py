"""The lab's two documents, a pathology report and a work order, rendered with fpdf2.

Pure rendering: the caller gathers plain-text data (frozen dataclasses) and wraps the call in
`force_locale(lab_locale)`; every printed label goes through gettext at render time. Output is
deterministic (same data, same bytes): the creation date comes from the data, never "now".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from flask_babel import format_currency, format_date, get_locale
from flask_babel import gettext as _
from fpdf import FPDF
from fpdf.fonts import FontFace

from webapp.pdf.fonts import FAMILY, add_fonts

PT = 25.4 / 72  # millimetres per point
MARGIN = 18.0  # left and right page margins, mm
HEADER_TOP = 13.0  # the letterhead starts a little above the text margin
FOOTER_Y = -13.0  # the footer's line, from the bottom edge
BREAK_MARGIN = 24.0  # body text stops here above the bottom edge, clear of the footer
BLACK, GREY, RULE, SHADE = (0, 0, 0), (90, 90, 90), (200, 200, 200), (243, 243, 243)
TITLE_PT, HEADING_PT, BODY_PT, LABEL_PT, SMALL_PT = 15.0, 10.5, 9.5, 8.5, 7.5
LEADING = 1.4  # line box height, in em of the font size
LABEL = FontFace(family=FAMILY, emphasis="", size_pt=LABEL_PT, color=GREY)
VALUE = FontFace(family=FAMILY, emphasis="", size_pt=BODY_PT, color=BLACK)
BOLD_VALUE = FontFace(family=FAMILY, emphasis="B", size_pt=BODY_PT, color=BLACK)
HEAD_ROW = FontFace(family=FAMILY, emphasis="B", size_pt=LABEL_PT, color=GREY, fill_color=SHADE)


@dataclass(frozen=True)
class Cassette:
    cassette: str
    tissue: str
    observation: str


@dataclass(frozen=True)
class ReportData:
    lab_name: str
    lab_address: str
    protocol_number: str  # "HP 26/0001"
    received_on: date
    report_date: date
    veterinarian: str
    clinic: str
    veterinarian_email: str
    animal_id: str
    species: str
    analysis: str  # already translated, e.g. "Histopatología"
    clinical_history: str
    cassettes: tuple[Cassette, ...]
    diagnosis: str
    histopathologist: str
    version: int


@dataclass(frozen=True)
class WorkOrderLine:
    protocol_number: str
    animal_id: str
    species: str
    service: str
    quantity: int
    price_cents: int  # the line's price for its whole quantity: the total is their sum


@dataclass(frozen=True)
class WorkOrderData:
    lab_name: str
    lab_address: str
    work_order_id: int
    version: int
    created_on: date
    updated_on: date
    veterinarian: str
    clinic: str
    veterinarian_email: str
    lines: tuple[WorkOrderLine, ...]
    notes: str


class LabDocument(FPDF):
    """A4 pages with the lab's letterhead and a "Page X of Y" footer on every page."""

    def __init__(
        self,
        lab_name: str,
        lab_address: str,
        reference: str,
        footer_text: str,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.lab_name, self.lab_address = lab_name, lab_address
        self.reference, self.footer_text = reference, footer_text
        self.progress = progress
        add_fonts(self)
        self.set_margins(MARGIN, HEADER_TOP, MARGIN)
        self.set_auto_page_break(True, margin=BREAK_MARGIN)
        self.set_producer("Pressroom")
        self.set_creator("Pressroom")
        self.set_author(lab_name)
        self.set_lang(str(get_locale() or "en").replace("_", "-"))  # a BCP 47 tag: "es", "en-US"
        self.set_draw_color(*RULE)
        self.set_line_width(0.2)

    def header(self) -> None:
        left_w = self.epw * 0.62
        self.set_xy(self.l_margin, HEADER_TOP)
        _font(self, "B", 13)
        self.multi_cell(left_w, 13 * PT * 1.3, self.lab_name, align="L", new_x="LMARGIN")
        _font(self, "", SMALL_PT, GREY)
        self.multi_cell(left_w, _line(SMALL_PT), self.lab_address, align="L", new_x="LMARGIN")
        bottom = self.y
        self.set_xy(self.l_margin + left_w, HEADER_TOP + 0.6)
        _font(self, "B", LABEL_PT + 0.5)
        self.multi_cell(self.epw - left_w, _line(LABEL_PT), self.reference, align="R")
        rule_y = max(bottom, self.y) + 2.5
        self.line(self.l_margin, rule_y, self.w - self.r_margin, rule_y)
        self.set_xy(self.l_margin, rule_y + 7)

    def footer(self) -> None:
        self.set_y(FOOTER_Y - 2.5)
        self.line(self.l_margin, self.y, self.w - self.r_margin, self.y)
        self.set_y(FOOTER_Y)
        _font(self, "", SMALL_PT, GREY)
        half = self.epw / 2
        self.cell(half, _line(SMALL_PT), self.footer_text)
        page = _("Page %(page)s of %(pages)s", page=self.page_no(), pages="{nb}")
        # fpdf2 lays "{nb}" out as "000" and prints the total left-aligned in that room: widen
        # the cell by the two digits a total under 10 leaves free, so it ends at the margin
        # (Noto Sans digits all have one width; a total of 10-99 ends one digit past it).
        spare = 2 * self.get_string_width("0")
        self.cell(half + spare, _line(SMALL_PT), page, align="R")
        if self.progress is not None:
            self.progress(self.page_no())

    def finish(self, out: Path, created: date) -> int:
        """Pin the creation date to `created` (byte-stable output), write `out`; → pages."""
        self.set_creation_date(datetime.combine(created, time(), tzinfo=UTC))
        self.output(str(out))
        pages = self.pages_count
        if self.progress is not None:
            self.progress(pages)  # the last page's footer reported it already: harmless again
        return pages


def render_report(
    data: ReportData, out: Path, progress: Callable[[int], None] | None = None
) -> int:
    """Write the report PDF to `out`; → number of pages. `progress(pages_done)` is called after
    each page is laid out (may be called with the same number twice)."""
    reference = _("Protocol %(number)s", number=data.protocol_number)
    pdf = LabDocument(data.lab_name, data.lab_address, reference, data.protocol_number, progress)
    pdf.set_title(f"{_('Pathology report')} {data.protocol_number}")
    pdf.add_page()
    _title(pdf, _("Pathology report"))
    veterinarian = "\n".join(v for v in (data.veterinarian, data.veterinarian_email) if v)
    _facts(
        pdf,
        [
            (_("Protocol"), data.protocol_number, _("Veterinarian"), veterinarian),
            (_("Analysis"), data.analysis, _("Clinic"), data.clinic),
            (_("Received"), format_date(data.received_on, "long"), _("Animal"), data.animal_id),
            (_("Report date"), format_date(data.report_date, "long"), _("Species"), data.species),
        ],
    )
    _heading(pdf, _("Clinical history"))
    _paragraph(pdf, data.clinical_history)
    _heading(pdf, _("Cassettes"), keep=22)
    if data.cassettes:
        _cassettes(pdf, data.cassettes)
    else:
        _paragraph(pdf, _("No cassettes recorded."))
    _heading(pdf, _("Diagnosis"))
    _paragraph(pdf, data.diagnosis)
    _signature(pdf, data)
    return pdf.finish(out, data.report_date)


def render_work_order(data: WorkOrderData, out: Path) -> int:
    """Write the work order PDF to `out`; → number of pages."""
    reference = _("Work order %(id)s", id=data.work_order_id)
    pdf = LabDocument(data.lab_name, data.lab_address, reference, reference)
    pdf.set_title(reference)
    pdf.add_page()
    _title(pdf, reference)
    _facts(
        pdf,
        [
            (_("Veterinarian"), data.veterinarian),
            (_("Clinic"), data.clinic),
            (_("Email"), data.veterinarian_email),
        ],
        width=pdf.epw * 0.7,
    )
    pdf.ln(2.5)
    _font(pdf, "", LABEL_PT, GREY)
    dates = "     ·     ".join(
        [
            _("Created %(date)s", date=format_date(data.created_on, "medium")),
            _("Last changed %(date)s", date=format_date(data.updated_on, "medium")),
            _("Version %(version)s", version=data.version),
        ]
    )
    pdf.multi_cell(0, _line(LABEL_PT), dates, align="L", new_x="LMARGIN")
    _heading(pdf, _("Services"), keep=22)
    _order_lines(pdf, data.lines)
    _heading(pdf, _("Notes"))
    _paragraph(pdf, data.notes)
    return pdf.finish(out, data.updated_on)


def estimate_report_pages(cassettes: int, text_chars: int) -> int:
    """A cheap guess of the page count before rendering (progress total); ≥ 1.

    `text_chars` counts the free text: clinical history, observations and diagnosis. The mm
    figures were read off rendered reports: a page holds ~240 mm of body, less ~20 mm for the
    repeated heading row and the gap a row too tall for the page's end leaves; the title, case
    data, headings and signature take ~135 mm; a cassette row is 3.2 mm of padding plus
    4.45 mm per line of ~69 characters, its last line half full on average.
    """
    lines = max(cassettes, text_chars / 69 + cassettes / 2)
    height = 135 + cassettes * 3.2 + lines * 4.45
    return max(1, math.ceil(height / 220))


# -- building blocks ---------------------------------------------------------------------------


def _line(size_pt: float) -> float:
    """Height in mm of one line of text at `size_pt`."""
    return size_pt * PT * LEADING


def _font(pdf: FPDF, style: str, size_pt: float, color: tuple[int, int, int] = BLACK) -> None:
    pdf.set_font(FAMILY, style, size_pt)
    pdf.set_text_color(*color)


def _title(pdf: FPDF, text: str) -> None:
    _font(pdf, "B", TITLE_PT)
    pdf.multi_cell(0, _line(TITLE_PT), text, align="L", new_x="LMARGIN")
    pdf.ln(4)


def _heading(pdf: FPDF, text: str, keep: float = 16) -> None:
    """A section heading; it moves to the next page unless `keep` mm fit below it, so it is
    never left alone at the bottom of a page."""
    pdf.ln(6)
    if pdf.will_page_break(_line(HEADING_PT) + 1.5 + keep):
        pdf.add_page()
    _font(pdf, "B", HEADING_PT)
    pdf.cell(0, _line(HEADING_PT), text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1.5)


def _paragraph(pdf: FPDF, text: str) -> None:
    """Free text, printed in full over as many pages as it needs; empty text prints a dash."""
    _font(pdf, "", BODY_PT)
    body = text.strip() or "—"
    pdf.multi_cell(0, _line(BODY_PT), body, align="L", new_x="LMARGIN")


def _facts(pdf: FPDF, rows: Sequence[tuple[str, ...]], width: float | None = None) -> None:
    """Label/value pairs in columns (grey labels, black values), without borders."""
    pairs = len(rows[0]) // 2
    label_w = 30  # room for the longer Spanish and Dutch labels on one line
    value_w = 57 if pairs == 2 else 90
    with pdf.table(
        width=width or pdf.epw,
        col_widths=(label_w, value_w) * pairs,
        align="L",
        borders_layout="NONE",
        first_row_as_headings=False,
        line_height=_line(BODY_PT),
        padding=(0.9, 2, 0.9, 0),
        text_align="LEFT",
        v_align="TOP",
    ) as table:
        for row in rows:
            cells = table.row()
            for i, text in enumerate(row):
                cells.cell(text, style=VALUE if i % 2 else LABEL)


def _table_style(pdf: FPDF, col_widths: Sequence[float], align: Sequence[str]) -> dict[str, Any]:
    """The look every data table shares: light horizontal rules, a shaded heading row that is
    repeated at the top of each page the table continues on, cells that wrap their text."""
    _font(pdf, "", BODY_PT - 0.5)
    return {
        "col_widths": tuple(col_widths),
        "borders_layout": "HORIZONTAL_LINES",
        "headings_style": HEAD_ROW,
        "line_height": _line(BODY_PT - 0.5),
        "padding": (1.6, 2, 1.6, 2),
        "text_align": tuple(align),
        "v_align": "TOP",
        "repeat_headings": 1,
    }


def _cassettes(pdf: FPDF, cassettes: Sequence[Cassette]) -> None:
    with pdf.table(**_table_style(pdf, (13, 27, 78), ("LEFT",) * 3)) as table:
        table.row([_("Cassette"), _("Tissue"), _("Observation")])
        for c in cassettes:
            row = table.row()
            row.cell(c.cassette, style=FontFace(emphasis="B"))
            row.cell(c.tissue)
            row.cell(c.observation.strip() or "—")


def _order_lines(pdf: FPDF, lines: Sequence[WorkOrderLine]) -> None:
    widths, align = (19, 15, 15, 44, 12, 16), ("LEFT",) * 4 + ("RIGHT", "RIGHT")
    with pdf.table(**_table_style(pdf, widths, align)) as table:
        heads = [_("Protocol"), _("Animal"), _("Species"), _("Service"), _("Qty"), _("Price")]
        table.row(heads)
        for line in lines:
            row = table.row()
            for text in (line.protocol_number, line.animal_id, line.species, line.service):
                row.cell(text)
            row.cell(str(line.quantity))
            row.cell(_money(line.price_cents))
        if not lines:
            table.row().cell(_("No services recorded."), colspan=6, align="LEFT")
        total = table.row()
        total.cell(_("Total"), colspan=5, align="RIGHT", style=BOLD_VALUE)
        total.cell(_money(sum(line.price_cents for line in lines)), style=BOLD_VALUE)


def _money(cents: int) -> str:
    return format_currency(cents / 100, "EUR")


def _signature(pdf: FPDF, data: ReportData) -> None:
    """Who validated the report, kept whole on one page (a new page if it would not fit)."""
    validated = format_date(data.report_date, "long")
    lines = [
        ("B", BODY_PT + 0.5, BLACK, data.histopathologist),
        ("", LABEL_PT, GREY, _("Histopathologist")),
        ("", LABEL_PT, GREY, _("Validated electronically on %(date)s", date=validated)),
        ("", LABEL_PT, GREY, _("Report version %(version)s", version=data.version)),
    ]
    gap_above, gap_rule = 14, 3
    height = gap_above + gap_rule + sum(_line(size) for _s, size, _c, _t in lines)
    if pdf.will_page_break(height):
        pdf.add_page()  # the header's gap is enough above it on a fresh page
    else:
        pdf.ln(gap_above)
    width = 75
    pdf.line(pdf.l_margin, pdf.y, pdf.l_margin + width, pdf.y)
    pdf.ln(gap_rule)
    for style, size, color, text in lines:
        _font(pdf, style, size, color)
        pdf.cell(width * 2, _line(size), text, new_x="LMARGIN", new_y="NEXT")
