"""The label writer: places labels on roll pages or sheets and draws each one fast.

Every label kind shares it: a kind turns its records into `LabelData` and the writer does the
geometry (layout preset, start position on a partly used sheet, printer offset), the fonts and
the QR code. Output is deterministic: the creation date comes from the caller.

Speed (docs/benchmarks.md): a label costs ~0.12 ms of QR encoding plus little else.
Everything that depends only on the text (widths, the shrink-then-wrap fit of the name and
detail lines) is cached per process, because names and details repeat across labels and
across the chunks of a batch; only the lot number is measured per label.
"""

from __future__ import annotations

import io
import string
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import pikepdf
from fpdf import FPDF

from webapp.pdf import fonts
from webapp.pdf.fonts import FAMILY, add_fonts
from webapp.pdf.layout import Layout
from webapp.pdf.qr import modules, qr_operators

PT = 25.4 / 72  # millimetres per point
MM = 72 / 25.4  # points per millimetre (PDF user space)
MIN_PT = 4.0  # smallest text we plan for; below that we wrap instead (and shrink only if we must)
TITLE_PT, NAME_PT, SMALL_PT = 13.0, 8.5, 6.5  # nominal sizes for a 29 mm high label
ASCENT = 0.95  # the title's baseline below the top of the text area, in em
DESCENT = 0.27  # Noto Sans descends ~0.24 em below the baseline; keep it inside the label
LEADING = 1.15  # baseline to baseline of the name's lines, in em


@dataclass(frozen=True, slots=True)
class LabelData:
    title: str  # large, bold (the lot number)
    qr: str  # QR payload
    name: str  # printed in full: shrunk, then wrapped, never cut
    details: str = ""
    lines: tuple[str, ...] = ()


# -- text measuring (process-wide: the widths depend only on the font files) ------------------

_CHAR_MM: dict[str, dict[str, float]] = {"": {}, "B": {}}  # style → char → width in mm at 1 pt
_measure_pdf: FPDF | None = None


def _char_width(style: str, char: str) -> float:
    global _measure_pdf
    if _measure_pdf is None:
        _measure_pdf = FPDF(unit="mm")
        add_fonts(_measure_pdf)
    _measure_pdf.set_font(FAMILY, style, 100)
    width = _CHAR_MM[style][char] = _measure_pdf.get_string_width(char) / 100
    return width


def text_width(text: str, style: str = "") -> float:
    """Width in mm of `text` at 1 pt: the sum of its glyph widths, as fpdf2 measures unshaped text."""
    widths = _CHAR_MM[style]
    try:
        return sum([widths[c] for c in text])
    except KeyError:
        return sum([widths.get(c) or _char_width(style, c) for c in text])


def warm() -> None:
    """Load what every label needs once per process (worker boot), not inside the first job:
    the font instances (made once per machine, slow the first time) and the glyph widths."""
    fonts.warm()
    text_width(string.printable + "×·–—“”‘’€ÄÖÜäöüßéèëêàáâçñłąęśźżćńóŁØøÅåæÆ", "")
    text_width(string.printable + "ÄÖÜØ", "B")
    modules("warm")  # imports zxing-cpp's encoder


def wrap(text: str, max_w: float, size: float) -> list[str]:
    """Greedy word wrap at `size` pt; a word wider than a line is broken between letters."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if text_width(candidate) * size <= max_w:
            line = candidate
            continue
        if line:
            lines.append(line)
        while text_width(word) * size > max_w and len(word) > 1:
            cut = len(word) - 1
            while cut > 1 and text_width(word[:cut]) * size > max_w:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    return lines or [""]


def block_height(size: float, lines: int, leading: float = LEADING) -> float:
    """Height in mm of `lines` line boxes at `size` pt (a box reaches the line's descenders)."""
    return lines * leading * size * PT


@lru_cache(maxsize=4096)
def fit(
    text: str, max_w: float, max_h: float, nominal: float, floor: float = MIN_PT
) -> tuple[float, tuple[str, ...]]:
    """(size in pt, lines) that show all of `text` in the box: shrink first, then wrap.

    One line is kept while it can stay at 3/4 of the nominal size; otherwise the text wraps at
    the largest size whose lines fit the height (one line wins if wrapping would be smaller).
    Below `floor` it keeps shrinking in finer steps: text is never cut.
    """
    one_line = min(nominal, max_w / max(text_width(text), 1e-6), max_h / block_height(1, 1))
    if one_line >= nominal * 0.75:
        return one_line, (text,)
    size = nominal
    while True:
        lines = wrap(text, max_w, size)
        if block_height(size, len(lines)) <= max_h or size <= 0.5:
            break
        size = max(0.5, size - (0.25 if size > floor else 0.1))
    return (one_line, (text,)) if one_line >= size else (size, tuple(lines))


@dataclass(frozen=True, slots=True)
class _Geometry:
    """Where things go on one label, in mm from its top-left corner (computed once per writer)."""

    pad: float
    qr: float
    text_x: float
    text_w: float
    text_top: float
    text_bottom: float
    scale: float  # text sizes relative to a 29 mm high label

    @classmethod
    def of(cls, layout: Layout) -> _Geometry:
        w, h = layout.label_w, layout.label_h
        pad = layout.pad if layout.pad is not None else max(1.5, h * 0.06)
        qr = min(h - 2 * pad, w * 0.38)  # ≥ 0.9 mm modules for lot numbers; the rest is text
        text_x = pad + qr + max(pad, 0.06 * qr)  # a gap of ≥ 1.2 modules keeps the code readable
        return cls(
            pad=pad,
            qr=qr,
            text_x=text_x,
            text_w=w - text_x - pad,
            text_top=pad,
            text_bottom=h - pad,
            scale=min(h, 2 * w / 3) / 29,
        )


Run = tuple[str, float, float, str]  # style, size in pt, baseline below the label's top, text


@lru_cache(maxsize=8192)
def _detail(text: str, text_w: float, scale: float) -> tuple[tuple[float, float, str], ...]:
    """(size, line box height, line) of a detail line: shrunk to the width, down to the smallest
    planned size, then wrapped there."""
    small, floor = SMALL_PT * scale, MIN_PT * scale
    size = min(small, text_w / max(text_width(text), 1e-6))
    if size >= floor:
        return ((size, 1.2 * small * PT, text),)
    return tuple((floor, 1.2 * floor * PT, line) for line in wrap(text, text_w, floor))


@lru_cache(maxsize=8192)
def _body(geo: _Geometry, name: str, extra: tuple[str, ...]) -> tuple[float, tuple[Run, ...]]:
    """(title size, text runs below the title) for one label; nothing is ever cut.

    Text is stacked in line boxes (baseline 0.27 em above the box's bottom). The name gets the
    height the detail lines leave; if that leaves it smaller than the details, everything
    shrinks. Names and detail lines are fitted once per process (they repeat across labels).
    """
    s = geo.scale
    while True:
        title, floor = TITLE_PT * s, MIN_PT * s
        details = [line for text in extra for line in _detail(text, geo.text_w, s)]
        name_top = geo.text_top + 1.25 * title * PT
        name_h = geo.text_bottom - name_top - sum(box for _, box, _ in details)
        size, lines = fit(name, geo.text_w, max(name_h, 0.1), NAME_PT * s, floor)
        if size >= 0.75 * floor or s < 0.2:
            break
        s *= 0.9
    runs: list[Run] = []
    top = name_top
    for line in lines:
        top += LEADING * size * PT
        runs.append(("", size, top - DESCENT * size * PT, line))
    for pt, box, text in details:
        top += box
        runs.append(("", pt, top - DESCENT * box / 1.2, text))
    return title, tuple(runs)


# -- the writer ---------------------------------------------------------------------------------


class LabelWriter:
    """Labels of one layout into one PDF: `add()` each label in order, then `output()`.

    fpdf2 does the fonts: it loads Noto Sans, encodes the text in its subsets and writes the
    fonts, their subsets and the document info on `output()`. The pages are assembled here:
    a label is a few operators (the QR path and the text, in label coordinates: a `cm`
    translation to the label's corner), and at 1,000 pages fpdf2's own page machinery
    (`add_page()`, then serialising two objects per page) costs as much as drawing the labels.
    So fpdf2 writes a one-page document whose page carries the shared /Resources (the fonts),
    and pikepdf (qpdf) puts our content streams on pages that share those resources.

    Text goes through fpdf2's own font object (`TTFFont.encode_text`, which also records the
    glyphs for the subset), once per distinct line and document: its public `text()` and
    `set_font()` cost ~15 µs per line. tests/unit/test_pdf_fpdf_internals.py checks that the
    result matches what `text()` writes; fpdf2 is pinned.
    """

    def __init__(
        self,
        layout: Layout,
        *,
        created: datetime,
        start_position: int = 1,
        offset_x: float = 0.0,
        offset_y: float = 0.0,
        first_slot: int | None = None,
    ) -> None:
        self.layout = layout
        self.geo = _Geometry.of(layout)
        self.offset = (offset_x, offset_y)
        self.start_slot = start_position - 1
        self.pdf = pdf = FPDF(unit="mm", format=(layout.page_w, layout.page_h))
        pdf.set_auto_page_break(False)
        pdf.set_margin(0)
        pdf.set_creation_date(created if created.tzinfo else created.replace(tzinfo=UTC))
        pdf.set_title("Labels")
        pdf.set_producer("Pressroom")
        # One /Resources dict listing every font (the pages below all use it); no transparency
        # group (no images); no "{nb}" page-count substitution.
        pdf.single_resources_object = True
        pdf.allow_images_transparency = False
        pdf.alias_nb_pages(None)  # type: ignore[arg-type]  # None turns the alias off (fpdf2 2.8)
        add_fonts(pdf)
        pdf.add_page()  # the template page: output() takes its /Resources for every page
        self._fonts = {style: pdf.fonts[FAMILY + style] for style in ("", "B")}
        self._encoded: dict[tuple[str, str], str] = {}
        self._bodies: dict[tuple[str, tuple[str, ...]], tuple[float, str]] = {}
        self._first = first_slot or 0
        self._page = (
            -1 if first_slot is None else (first_slot + self.start_slot) // layout.per_page - 1
        )
        self._pages: list[list[str]] = []  # the content (operators) of each page

    def add(self, slot: int, label: LabelData) -> None:
        """Draw `label` in slot `slot` (0-based label index within the whole batch)."""
        x, y = self.open_slot(slot)
        self.draw(x, y, label)

    def open_slot(self, slot: int) -> tuple[float, float]:
        """Start the pages up to slot `slot`'s; → its top-left corner in mm (offset applied)."""
        page, x, y = self.layout.place(slot + self.start_slot)
        while self._page < page:
            self._pages.append([])
            self._page += 1
        return x + self.offset[0], y + self.offset[1]

    def put(self, ops: str) -> None:
        """Add operators to the current page (a kind that draws its own labels)."""
        if not self._pages:
            self._pages.append([])
        self._pages[-1].append(ops)

    def font_id(self, style: str) -> int:
        """The resource number (`/F<n>`) of the font in `style` ("" or "B")."""
        return int(self._fonts[style].i)

    def show(self, style: str, text: str) -> str:
        """The `(...) Tj` operator of `text` in this document's subset of the font."""
        key = (style, text)
        shown = self._encoded.get(key)
        if shown is None:
            shown = self._encoded[key] = self._fonts[style].encode_text(text)
        return shown

    def _body(self, name: str, extra: tuple[str, ...]) -> tuple[float, str]:
        """(nominal title size, text operators below the title in label coordinates)."""
        key = (name, extra)
        body = self._bodies.get(key)
        if body is None:
            title_pt, runs = _body(self.geo, name, extra)
            font = self._fonts[""].i
            x = self.geo.text_x * MM
            ops = " ".join(
                f"/F{font} {size:.2f} Tf 1 0 0 1 {x:.2f} {-dy * MM:.2f} Tm {self.show(style, text)}"
                for style, size, dy, text in runs
            )
            body = self._bodies[key] = (title_pt, ops)
        return body

    def draw(self, x: float, y: float, label: LabelData) -> None:
        """Draw `label` with its top-left corner at (x, y) mm on the current page."""
        if not self._pages:
            self._pages.append([])
        geo = self.geo
        nominal_pt, body = self._body(
            label.name, tuple(t for t in (label.details, *label.lines) if t)
        )
        # A long lot number shrinks on its nominal baseline, so the lines below do not move.
        title_pt = min(nominal_pt, geo.text_w / max(text_width(label.title, "B"), 1e-6))
        title_y = (geo.text_top + ASCENT * nominal_pt * PT) * MM
        qr_y = (self.layout.label_h - geo.qr) / 2
        # Label coordinates: origin at the label's top-left corner, y upwards (so below is < 0).
        self._pages[-1].append(
            f"q 1 0 0 1 {x * MM:.2f} {(self.layout.page_h - y) * MM:.2f} cm 0 g "
            f"{qr_operators(label.qr, geo.pad, qr_y, geo.qr, 0.0, MM)} "
            f"BT /F{self._fonts['B'].i} {title_pt:.2f} Tf 1 0 0 1 {geo.text_x * MM:.2f} "
            f"{-title_y:.2f} Tm {self.show('B', label.title)} {body} ET Q"
        )

    def output(self, path: Path) -> None:
        """Write the PDF to `path` (deterministic: the same labels give the same bytes)."""
        # fpdf2 tags every font subset "MPDFAA+"; the chunks of a batch are merged into one file
        # where different subsets must have different tags (PDF 32000 §9.6.4), or a printer may
        # take one chunk's glyphs for another's. Same length, so the xref offsets stay valid.
        fonts = bytes(self.pdf.output()).replace(b"/MPDFAA+", b"/%s+" % subset_tag(self._first))
        with pikepdf.open(io.BytesIO(fonts)) as document:
            tree = document.Root.Pages
            template = tree.Kids[0]
            resources = template.Resources
            tree.MediaBox = template.get("/MediaBox", tree.get("/MediaBox"))
            kids = []
            for ops in self._pages or [[]]:
                content = pikepdf.Stream(document, zlib.compress("\n".join(ops).encode("latin-1")))
                content.Filter = pikepdf.Name.FlateDecode  # the bytes above are deflated already
                kids.append(
                    document.make_indirect(
                        pikepdf.Dictionary(
                            Type=pikepdf.Name.Page,
                            Parent=tree,
                            Resources=resources,
                            Contents=content,
                        )
                    )
                )
            tree.Kids = pikepdf.Array(kids)  # the page size is inherited from the page tree
            tree.Count = len(kids)
            document.save(
                path,
                deterministic_id=True,
                compress_streams=True,
                object_stream_mode=pikepdf.ObjectStreamMode.generate,
            )


def subset_tag(number: int) -> bytes:
    """Six capital letters that differ for every chunk start (`number` in base 26)."""
    letters = []
    for _ in range(6):
        number, digit = divmod(number, 26)
        letters.append(65 + digit)
    return bytes(reversed(letters))
