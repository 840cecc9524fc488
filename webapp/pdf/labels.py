"""The label writer: places labels on roll pages or sheets and draws each one fast.

Every label kind shares it: a kind turns its records into `LabelData` and the writer does the
geometry (layout preset, start position on a partly used sheet, printer offset), the fonts and
the QR code. Output is deterministic: the creation date comes from the caller.

Typography is decided once per batch (`plan()` → `Typography`): each field (lot number, plant
name, the detail lines) gets one type size and one line budget for the whole batch, so every
label of a sheet has the same sizes and the same baselines. A field shrinks for the batch only
when its widest value needs it, down to MIN_PT; then it wraps at that size (the name within the
height the label leaves it, a detail line in up to DETAIL_LINES lines); only a value that still
does not fit its line budget at MIN_PT is shortened with "…" (logged). A batch rendered in
chunks gets its plan from the job (decided at submit), so every worker draws the same.

Text in scripts Noto Sans lacks (or cannot draw unshaped) goes to the fallback chain of
webapp/pdf/fonts.py: a line is split into runs per font, RTL text is reordered (fpdf2's bidi
algorithm) and runs in complex scripts are shaped with HarfBuzz (uharfbuzz, through fpdf2's
font objects). Latin text keeps the fast path: no runs, no shaping.

Speed (docs/benchmarks.md): a label costs ~0.12 ms of QR encoding plus little else.
Everything that depends only on the text (widths, runs, wrapped lines) is cached per process,
because names and details repeat across labels and across the chunks of a batch.
"""

from __future__ import annotations

import io
import logging
import math
import string
import unicodedata
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import pikepdf
from fpdf import FPDF
from fpdf.bidi import BidiParagraph, auto_detect_base_direction
from fpdf.enums import TextDirection
from fpdf.fonts import TTFFont

from webapp.pdf import fonts
from webapp.pdf.fonts import FAMILY, add_fallback, add_fonts, fallback_font, font_for
from webapp.pdf.layout import Layout
from webapp.pdf.merge import save_pdf
from webapp.pdf.qr import modules, qr_operators

log = logging.getLogger(__name__)

PT = 25.4 / 72  # millimetres per point
MM = 72 / 25.4  # points per millimetre (PDF user space)
MIN_PT = 5.0  # the smallest type on a label: below it a field wraps, then (last resort) "…"
TITLE_PT, NAME_PT, SMALL_PT = 13.0, 8.5, 6.5  # nominal sizes for a 29 mm high label
ASCENT = 0.95  # the title's baseline below the top of the text area, in em
DESCENT = 0.27  # Noto Sans descends ~0.24 em below the baseline; keep it inside the label
LEADING = 1.15  # baseline to baseline of the name's lines, in em
DETAIL_LEADING = 1.2  # the same for the detail lines
DETAIL_LINES = 2  # the most lines a detail field wraps into at MIN_PT
ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class LabelData:
    title: str  # large, bold (the lot number)
    qr: str  # QR payload
    name: str  # printed in full: shrunk, then wrapped, never cut
    details: str = ""
    #: Further detail fields, one slot each (keep empty ones: a slot is a field, so the same
    #: field sits on the same baseline on every label).
    lines: tuple[str, ...] = ()

    def fields(self) -> tuple[str, ...]:
        """The detail fields in slot order: `details`, then `lines`."""
        return (self.details, *self.lines)


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


@dataclass(frozen=True, slots=True)
class TextRun:
    """A piece of a line in one font, in visual order: `font` is "" / "B" (Noto Sans) or a
    fallback's key; `rtl` runs are shaped right to left; `width` in mm at 1 pt."""

    font: str
    text: str
    rtl: bool
    shape: bool
    width: float


def simple(text: str, style: str = "") -> bool:
    """True when Noto Sans draws all of `text` unshaped (the fast path)."""
    return all(font_for(c, style) == style for c in text)


@lru_cache(maxsize=16384)
def runs(text: str, style: str = "") -> tuple[TextRun, ...]:
    """`text` as font runs in visual order (bidi reordered), each measured (shaped if needed).

    A character goes to the first font of the chain that has it; spaces and punctuation stay in
    the run of a complex script they follow when its font has them. Characters no font has are
    dropped here (the pre-flight refuses them before a job starts)."""
    direction = auto_detect_base_direction(text)
    if any(unicodedata.bidirectional(c) in ("R", "AL") for c in text):
        fragments = BidiParagraph(
            text=text, base_direction=direction, preserve_bn_chars=True
        ).get_bidi_fragments()
    else:
        fragments = ((text, TextDirection.LTR),)
    groups: list[list[TextRun]] = []  # consecutive runs of one direction, in logical order
    for fragment, frag_dir in fragments:
        rtl = frag_dir == TextDirection.RTL
        pieces: list[list[str]] = []  # [font, text]
        for char in fragment:
            key = font_for(char, style)
            if key is None:
                continue
            if pieces and key != pieces[-1][0] and _neutral(char) and _keeps(pieces[-1][0], char):
                key = pieces[-1][0]
            if pieces and pieces[-1][0] == key:
                pieces[-1][1] += char
            else:
                pieces.append([key, char])
        made = [_measured(key, piece, rtl) for key, piece in pieces]
        if groups and groups[-1] and groups[-1][0].rtl == rtl:
            groups[-1].extend(made)
        elif made:
            groups.append(made)
    if direction == TextDirection.RTL:  # as fpdf2 orders its fragments (line_break.py)
        groups.reverse()
    return tuple(run for group in groups for run in (group[::-1] if group[0].rtl else group))


def _neutral(char: str) -> bool:
    return unicodedata.category(char)[0] in ("Z", "P") or char.isdigit()


def _keeps(key: str, char: str) -> bool:
    """Whether a space or punctuation mark stays in the run of a complex script (shaped with
    it, and reordered with it in RTL text); next to CJK or a symbol it is Noto Sans's."""
    spec = fonts.FALLBACK_BY_KEY.get(key)
    return spec is not None and spec.shape and ord(char) in fonts._cmap(key)


def _process_font(key: str) -> TTFFont:
    if key in ("", "B"):
        return fonts._loaded(key)[0]
    return fallback_font(key)


def _measured(key: str, text: str, rtl: bool) -> TextRun:
    shape = rtl or (key not in ("", "B") and fonts.FALLBACK_BY_KEY[key].shape)
    font = _process_font(key)
    if shape:
        params: dict[str, Any] = {
            "features": {},
            "fragment_direction": TextDirection.RTL if rtl else None,
        }
        _, positions = font.perform_harfbuzz_shaping(text, 10, params)
        units = sum(pos.x_advance for pos in positions or ())
        width = units * font.scale / 1000 * PT
    else:
        width = sum(font.cw[ord(c)] for c in text) / 1000 * PT
    return TextRun(key, text, rtl, shape, width)


def text_width(text: str, style: str = "") -> float:
    """Width in mm of `text` at 1 pt: the sum of its glyph widths (shaped where it is shaped)."""
    widths = _CHAR_MM[style]
    try:
        return sum(map(widths.__getitem__, text))
    except KeyError:
        if simple(text, style):
            return sum([widths.get(c) or _char_width(style, c) for c in text])
        return sum(run.width for run in runs(text, style))


def warm() -> None:
    """Load what every label needs once per process (worker boot), not inside the first job:
    the font instances (made once per machine, slow the first time) and the glyph widths."""
    fonts.warm()
    text_width(string.printable + "×·–—“”‘’€ÄÖÜäöüßéèëêàáâçñłąęśźżćńóŁØøÅåæÆ…", "")
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


def ellipsize(text: str, width: float, size: float, style: str = "") -> str:
    """`text`, shortened with "…" only when it is wider than `width` mm at `size` pt."""
    if text_width(text, style) * size <= width:
        return text
    cut = len(text)
    while cut > 1 and text_width(text[:cut] + ELLIPSIS, style) * size > width:
        cut -= 1
    return text[:cut].rstrip() + ELLIPSIS


@lru_cache(maxsize=16384)
def lines_for(text: str, max_w: float, size: float, budget: int) -> tuple[str, ...]:
    """`text` wrapped at `size` into at most `budget` lines; what does not fit ends in "…"
    (the last resort: logged, since the batch's plan should have made room)."""
    if not text:
        return ()
    lines = wrap(text, max_w, size) if text_width(text) * size > max_w else [text]
    if len(lines) <= budget:
        return tuple(lines)
    log.warning("label text shortened: %r does not fit %d line(s) at %.1f pt", text, budget, size)
    kept = lines[: budget - 1]
    rest = " ".join(lines[budget - 1 :])
    return (*kept, ellipsize(rest, max_w, size))


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

    def name_top(self, scale: float) -> float:
        """The top of the name's first line box: below the title's line at `scale`."""
        return self.text_top + 1.25 * TITLE_PT * scale * PT


def qr_size(layout: Layout) -> float:
    """How wide (mm) the writer draws the QR code on a label of `layout`."""
    return _Geometry.of(layout).qr


# -- the batch's typography -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldStyle:
    size: float  # pt
    lines: int  # the field's line budget (0: the field is empty on every label)


@dataclass(frozen=True, slots=True)
class Typography:
    """One batch's type: a size per field and a line budget per field, the same on every label."""

    title: float
    name: FieldStyle
    details: tuple[FieldStyle, ...]
    #: The title's line height (nominal size) relative to a 29 mm label: lowered for a batch
    #: whose names need the room.
    scale: float

    def as_dict(self) -> dict[str, Any]:
        """JSON for the job (chunks rendered by other workers draw with the same plan)."""
        return {
            "title": self.title,
            "name": [self.name.size, self.name.lines],
            "details": [[f.size, f.lines] for f in self.details],
            "scale": self.scale,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Typography:
        return cls(
            title=float(data["title"]),
            name=FieldStyle(float(data["name"][0]), int(data["name"][1])),
            details=tuple(FieldStyle(float(s), int(n)) for s, n in data["details"]),
            scale=float(data["scale"]),
        )


def _pt(size: float) -> float:
    """A size as the plan stores it (JSON, the content stream's 2 decimals): rounded down, so
    a value measured to fit still fits."""
    return math.floor(size * 100 + 1e-6) / 100


def _max_lines(values: Iterable[str], width: float, size: float) -> int:
    most = 0
    for value in values:
        if text_width(value) * size <= width:
            most = max(most, 1 if value else 0)
        else:
            most = max(most, len(wrap(value, width, size)))
    return most


def plan_values(
    layout: Layout, titles: Iterable[str], names: Iterable[str], slots: Sequence[Iterable[str]]
) -> Typography:
    """The batch's typography from the distinct values of each field (see the module doc)."""
    geo = _Geometry.of(layout)
    titles, names = set(titles), {n for n in names if n}
    fields = [{v for v in values if v} for values in slots]
    s, w = geo.scale, geo.text_w
    widest_title = max((text_width(t, "B") for t in titles), default=0.0)
    cap = SMALL_PT * s  # the detail lines are never larger than the name
    while True:
        floor = MIN_PT * min(1.0, s / (0.6 * geo.scale))  # tiny custom labels: below MIN_PT
        details = []
        for values in fields:
            widest = max((text_width(v) for v in values), default=0.0)
            if not values:
                details.append(FieldStyle(_pt(min(cap, SMALL_PT * s)), 0))
                continue
            size = min(cap, SMALL_PT * s, w / max(widest, 1e-6))
            if size >= floor:
                details.append(FieldStyle(_pt(size), 1))
            else:
                lines = min(DETAIL_LINES, _max_lines(values, w, floor))
                details.append(FieldStyle(_pt(floor), lines))
        used = sum(block_height(f.size, f.lines, DETAIL_LEADING) for f in details)
        height = geo.text_bottom - geo.name_top(s) - used
        name = _plan_name(names, w, height, NAME_PT * s, floor, last=s < 0.55 * geo.scale)
        if name is not None and name.lines and name.size < cap - 0.01 and cap > floor:
            cap = max(floor, name.size)  # smaller details leave the name more room: again
            continue
        if name is not None or s < 0.2:
            break
        s *= 0.9  # the title and the details give the name room (the whole label scales)
        cap = SMALL_PT * s
    if name is None:
        name = FieldStyle(_pt(floor), 1)
    title = _pt(min(TITLE_PT * s, w / max(widest_title, 1e-6)))
    return Typography(title, name, tuple(details), round(s, 4))


def _plan_name(
    names: set[str], width: float, height: float, nominal: float, floor: float, last: bool
) -> FieldStyle | None:
    """The name's size and line budget: one line while the widest name stays ≥ 3/4 of the
    nominal size; else the largest size at which every name's lines fit the height; else the
    floor with as many lines as fit (the longest names then end in "…")."""
    if not names:
        return FieldStyle(_pt(nominal), 0)
    widest = max(text_width(n) for n in names)
    one_line = min(nominal, width / max(widest, 1e-6))
    if one_line >= 0.75 * nominal and block_height(one_line, 1) <= height:
        return FieldStyle(_pt(one_line), 1)
    size = nominal
    while size >= floor:
        lines = _max_lines(names, width, size)
        if block_height(size, lines) <= height:
            if one_line >= size and block_height(one_line, 1) <= height:
                return FieldStyle(_pt(one_line), 1)
            return FieldStyle(_pt(size), lines)
        size -= 0.25
    fits = int(height / block_height(floor, 1) + 1e-9)
    if fits < 1 or not last:  # first try a smaller title and details (None: scale down)
        return None
    return FieldStyle(_pt(floor), fits)


def plan(layout: Layout, labels: Iterable[LabelData]) -> Typography:
    """The typography of a batch of labels (the writer's default when no plan is given)."""
    titles: set[str] = set()
    names: set[str] = set()
    slots: list[set[str]] = []
    for label in labels:
        titles.add(label.title)
        names.add(label.name)
        for index, value in enumerate(label.fields()):
            if index == len(slots):
                slots.append(set())
            slots[index].add(value)
    return plan_values(layout, titles, names, slots)


Run = tuple[str, float, float, str]  # style, size in pt, baseline below the label's top, text


@lru_cache(maxsize=8192)
def _body(geo: _Geometry, typo: Typography, name: str, extra: tuple[str, ...]) -> tuple[Run, ...]:
    """The text runs below the title of one label: every field on the batch's baselines."""
    out: list[Run] = []
    size = typo.name.size
    top = geo.name_top(typo.scale)
    for index, line in enumerate(lines_for(name, geo.text_w, size, typo.name.lines)):
        out.append(("", size, top + (index + 1) * LEADING * size * PT - DESCENT * size * PT, line))
    top += block_height(size, typo.name.lines)
    for index, style in enumerate(typo.details):
        text = extra[index] if index < len(extra) else ""
        box = DETAIL_LEADING * style.size * PT
        budget = style.lines or (1 if text else 0)  # a value the plan did not see: not lost
        for n, line in enumerate(lines_for(text, geo.text_w, style.size, budget)):
            out.append(("", style.size, top + (n + 1) * box - DESCENT * style.size * PT, line))
        top += box * style.lines
    return tuple(out)


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
        typography: Typography | None = None,
    ) -> None:
        self.layout = layout
        #: The batch's plan; without one, `add()` keeps the labels and `output()` plans them.
        self.typography = typography
        self._pending: list[tuple[int, LabelData]] = []
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
        self._fonts: dict[str, TTFFont] = {}
        for style in ("", "B"):
            font = pdf.fonts[FAMILY + style]
            assert isinstance(font, TTFFont)
            self._fonts[style] = font
        self._encoded: dict[tuple[str, str], str] = {}
        self._bodies: dict[tuple[str, tuple[str, ...]], str] = {}
        self._first = first_slot or 0
        self._page = (
            -1 if first_slot is None else (first_slot + self.start_slot) // layout.per_page - 1
        )
        self._pages: list[list[str]] = []  # the content (operators) of each page

    def add(self, slot: int, label: LabelData) -> None:
        """Draw `label` in slot `slot` (0-based label index within the whole batch)."""
        if self.typography is None:
            self._pending.append((slot, label))
            return
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

    def font_key_id(self, key: str) -> int:
        """The resource number of the font `key` ("" / "B" / a fallback), added when first used."""
        if key in ("", "B"):
            return int(self._fonts[key].i)
        return int(add_fallback(self.pdf, key).i)

    def line(self, style: str, size: float, x: float, baseline: float, text: str) -> str:
        """Operators (inside BT … ET) that draw `text` at `size` pt with its baseline `baseline`
        mm below the label's top and its left edge `x` mm from the label's left edge."""
        if simple(text, style):
            return (
                f"/F{self._fonts[style].i} {size:.2f} Tf 1 0 0 1 {x * MM:.2f} "
                f"{-baseline * MM:.2f} Tm {self.show(style, text)}"
            )
        out = []
        pen = x * MM
        y = -baseline * MM
        for run in runs(text, style):
            primary = run.font in ("", "B")
            font = self._fonts[run.font] if primary else add_fallback(self.pdf, run.font)
            out.append(f"/F{font.i} {size:.2f} Tf 1 0 0 1 {pen:.2f} {y:.2f} Tm")
            if run.shape:
                out.append(_shaped_ops(font, run, size, pen, y))
            else:
                out.append(font.encode_text(run.text))
            pen += run.width * size * MM
        return " ".join(out)

    def _body(self, name: str, extra: tuple[str, ...]) -> str:
        """The text operators below the title, in label coordinates (once per text per document)."""
        key = (name, extra)
        body = self._bodies.get(key)
        if body is None:
            assert self.typography is not None
            x = self.geo.text_x
            body = self._bodies[key] = " ".join(
                self.line(style, size, x, dy, text)
                for style, size, dy, text in _body(self.geo, self.typography, name, extra)
            )
        return body

    def draw(self, x: float, y: float, label: LabelData) -> None:
        """Draw `label` with its top-left corner at (x, y) mm on the current page."""
        if not self._pages:
            self._pages.append([])
        geo, typo = self.geo, self.typography
        assert typo is not None
        body = self._body(label.name, label.fields())
        # The lot number: the batch's size on the nominal baseline, so the lines below stay put.
        title_pt = typo.title
        if text_width(label.title, "B") * title_pt > geo.text_w:  # data changed since the plan
            title_pt = geo.text_w / max(text_width(label.title, "B"), 1e-6)
        title_y = geo.text_top + ASCENT * TITLE_PT * typo.scale * PT
        qr_y = (self.layout.label_h - geo.qr) / 2
        # Label coordinates: origin at the label's top-left corner, y upwards (so below is < 0).
        self._pages[-1].append(
            f"q 1 0 0 1 {x * MM:.2f} {(self.layout.page_h - y) * MM:.2f} cm 0 g "
            f"{qr_operators(label.qr, geo.pad, qr_y, geo.qr, 0.0, MM)} "
            f"BT {self.line('B', title_pt, geo.text_x, title_y, label.title)} {body} ET Q"
        )

    def output(self, path: Path | IO[bytes]) -> None:
        """Write the PDF to `path` or a binary stream (deterministic: the same labels give the
        same bytes)."""
        if self._pending:
            self.typography = plan(self.layout, (label for _, label in self._pending))
            for slot, label in self._pending:
                self.add(slot, label)
            self._pending = []
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
            save_pdf(document, path)  # a full disk raises OSError, never aborts in qpdf


def _shaped_ops(font: TTFFont, run: TextRun, size: float, x: float, y: float) -> str:
    """A shaped run's glyphs (HarfBuzz through fpdf2's font), positioned as fpdf2 does it
    (line_break.py: render_with_text_shaping), at pen (x, y) in points, label coordinates."""
    params: dict[str, Any] = {
        "features": {},
        "fragment_direction": TextDirection.RTL if run.rtl else None,
    }
    unit = font.scale * size / 1000  # font units → points
    out, text = [], ""
    for glyph in font.shape_text(run.text, size, params):
        if glyph["mapped_char"] is None:
            continue
        if glyph["x_offset"] or glyph["y_offset"]:
            if text:
                out.append(f"({text}) Tj")
                text = ""
            out.append(
                f"1 0 0 1 {x + glyph['x_offset'] * unit:.2f} {y + glyph['y_offset'] * unit:.2f} Tm"
            )
        text += font.escape_text(chr(glyph["mapped_char"]))
        x += glyph["x_advance"] * unit
        y += glyph["y_advance"] * unit
        if glyph["force_positioning"]:
            if text:
                out.append(f"({text}) Tj")
                text = ""
            out.append(f"1 0 0 1 {x:.2f} {y:.2f} Tm")
    if text:
        out.append(f"({text}) Tj")
    return " ".join(out)


def subset_tag(number: int) -> bytes:
    """Six capital letters that differ for every chunk start (`number` in base 26)."""
    letters = []
    for _ in range(6):
        number, digit = divmod(number, 26)
        letters.append(65 + digit)
    return bytes(reversed(letters))
