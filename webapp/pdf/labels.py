"""The label writer: places labels on roll pages or sheets and draws each one fast.

Every label kind shares it: a kind turns its records into `LabelData` and the writer does the
geometry (layout preset, start position on a partly used sheet, printer offset), the fonts and
the QR code. Output is deterministic: the creation date comes from the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

from webapp.pdf.fonts import FAMILY, add_fonts
from webapp.pdf.layout import Layout
from webapp.pdf.qr import draw_qr

PT = 25.4 / 72  # millimetres per point
MIN_PT = 4.0  # the smallest text we print; below that we wrap instead of cutting


@dataclass(frozen=True, slots=True)
class LabelData:
    title: str  # large, bold (the lot number)
    qr: str  # QR payload
    name: str  # printed in full: shrunk, then wrapped, never cut
    details: str = ""
    lines: tuple[str, ...] = ()


class LabelWriter:
    def __init__(self, layout: Layout, *, created: datetime, start_position: int = 1,
                 offset_x: float = 0.0, offset_y: float = 0.0, first_slot: int | None = None) -> None:
        self.layout = layout
        self.offset = (offset_x, offset_y)
        self.start_slot = start_position - 1
        self.pdf = pdf = FPDF(unit="mm", format=(layout.page_w, layout.page_h))
        pdf.set_auto_page_break(False)
        pdf.set_margin(0)
        pdf.set_creation_date(created if created.tzinfo else created.replace(tzinfo=UTC))
        pdf.set_title("Labels")
        pdf.set_producer("Pressroom")
        add_fonts(pdf)
        self._page = -1 if first_slot is None else (first_slot + self.start_slot) // layout.per_page - 1
        self._widths: dict[tuple[str, str], float] = {}
        self._fits: dict[tuple[str, float, float], tuple[float, list[str]]] = {}

    # -- text measuring ----------------------------------------------------------------------

    def _unit_width(self, text: str, style: str) -> float:
        """Width in mm of `text` at 1 pt."""
        key = (text, style)
        width = self._widths.get(key)
        if width is None:
            self.pdf.set_font(FAMILY, style, 10)
            width = self._widths[key] = self.pdf.get_string_width(text) / 10
        return width

    def _wrap(self, text: str, max_w: float, size: float) -> list[str]:
        """Greedy word wrap at `size` pt; a word wider than a line is broken between letters."""
        lines: list[str] = []
        line = ""
        for word in text.split():
            candidate = f"{line} {word}" if line else word
            if self._unit_width(candidate, "") * size <= max_w:
                line = candidate
                continue
            if line:
                lines.append(line)
            while self._unit_width(word, "") * size > max_w and len(word) > 1:
                cut = len(word) - 1
                while cut > 1 and self._unit_width(word[:cut], "") * size > max_w:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        if line:
            lines.append(line)
        return lines or [""]

    def fit(self, text: str, max_w: float, max_h: float, nominal: float) -> tuple[float, list[str]]:
        """(size in pt, lines) that show all of `text` in the box: shrink first, then wrap."""
        key = (text, max_w, max_h)
        fitted = self._fits.get(key)
        if fitted:
            return fitted
        one_line = min(nominal, max_w / max(self._unit_width(text, ""), 1e-6), max_h / (1.15 * PT))
        if one_line >= nominal * 0.75:
            fitted = (one_line, [text])
        else:
            size = nominal
            while True:
                lines = self._wrap(text, max_w, size)
                if len(lines) * size * 1.15 * PT <= max_h or size <= MIN_PT:
                    break
                size = max(MIN_PT, size - 0.25)
            fitted = (size, lines)
        self._fits[key] = fitted
        return fitted

    # -- drawing -----------------------------------------------------------------------------

    def add(self, slot: int, label: LabelData) -> None:
        """Draw `label` in slot `slot` (0-based label index within the whole batch)."""
        page, x, y = self.layout.place(slot + self.start_slot)
        while self._page < page:
            self.pdf.add_page()
            self._page += 1
        self.draw(x + self.offset[0], y + self.offset[1], label)

    def draw(self, x: float, y: float, label: LabelData) -> None:
        pdf, w, h = self.pdf, self.layout.label_w, self.layout.label_h
        m = max(1.5, h * 0.06)
        qr = min(h - 2 * m, w * 0.42)
        draw_qr(pdf, label.qr, x + m, y + (h - qr) / 2, qr)
        tx = x + 2 * m + qr
        tw = w - (tx - x) - m
        base = h / 29  # sizes below are for a 29 mm high label
        cursor = y + m

        title_pt = min(13 * base, tw / max(self._unit_width(label.title, "B"), 1e-6))
        pdf.set_font(FAMILY, "B", title_pt)
        cursor += title_pt * PT * 0.95
        pdf.text(tx, cursor, label.title)
        cursor += title_pt * PT * 0.3

        small = 6.5 * base
        extra = [t for t in (label.details, *label.lines) if t]
        name_h = (y + h - m) - cursor - len(extra) * small * PT * 1.2
        size, lines = self.fit(label.name, tw, name_h, 8.5 * base)
        pdf.set_font(FAMILY, "", size)
        for line in lines:
            cursor += size * PT * 1.1
            pdf.text(tx, cursor, line)
        cursor += size * PT * 0.15

        for text in extra:
            pt = min(small, tw / max(self._unit_width(text, ""), 1e-6))
            pdf.set_font(FAMILY, "", pt)
            cursor += small * PT * 1.2
            pdf.text(tx, cursor, text)

    def output(self, path: Path) -> None:
        if self._page < 0:
            self.pdf.add_page()
        self.pdf.output(str(path))
