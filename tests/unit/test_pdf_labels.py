"""The label PDFs themselves: pages, placement, text, fonts, QR codes, determinism, size."""

from __future__ import annotations

import ctypes
import itertools
import math
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pikepdf
import pypdfium2
import pypdfium2.raw as pdfium_c
import pytest
import zxingcpp

from webapp.documents import Part
from webapp.documents.potting_lots import PottingLotLabels, label_for
from webapp.extensions import db
from webapp.models import Job, PottingLot
from webapp.nursery.labels import quantity_text
from webapp.pdf.labels import LabelData, LabelWriter, fit, text_width
from webapp.pdf.layout import PRESETS, part_bounds

MM = 72 / 25.4
DPI = 203  # the label printers' resolution
CREATED = datetime(2026, 11, 23, 9, 30)
LONG_NAME = (
    "Rhododendron yakushimanum × degronianum subsp. heptamerum 'Koichiro Wada' "
    "Grandiflorum Compactum Superbum Nanum Variegatum Aureomarginatum Pendulum "
    "Fastigiatum Prostratum Select from the Royal Horticultural Society trials"
)


def labels(count: int, name: str = "Hydrangea macrophylla 'Bodensee'") -> list[LabelData]:
    return [
        LabelData(
            title=f"P2648-{n:05d}",
            qr=f"P2648-{n:05d}",
            name=name,
            details="P9 · 48× · 2026-W48",
            lines=("Kas 1 – tafel 04", "Hovenier Ünal"),
        )
        for n in range(1, count + 1)
    ]


def render(path: Path, items: list[LabelData], layout: str = "roll_62x29", **options) -> Path:
    writer = LabelWriter(PRESETS[layout], created=options.pop("created", CREATED), **options)
    for slot, label in enumerate(items):
        writer.add(slot, label)
    writer.output(path)
    return path


_opened: list[pypdfium2.PdfDocument] = []


@pytest.fixture(autouse=True)
def _close_documents() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def open_pdf(path: Path) -> pypdfium2.PdfDocument:
    document = pypdfium2.PdfDocument(str(path))
    _opened.append(document)  # closed after the test (pdfium complains about leaks at exit)
    return document


def page_text(page: pypdfium2.PdfPage) -> str:
    return page.get_textpage().get_text_range()


def char_boxes(page: pypdfium2.PdfPage) -> list[tuple[str, float, float, float, float]]:
    """(char, left, top, right, bottom) of every visible character, in mm from the top-left."""
    return [box[:5] for box in _chars(page)]


def _chars(page: pypdfium2.PdfPage) -> list[tuple[str, float, float, float, float, float]]:
    """char_boxes() plus each character's baseline (mm from the top)."""
    height = page.get_size()[1]
    text = page.get_textpage()
    x, y = ctypes.c_double(), ctypes.c_double()
    boxes = []
    for i in range(text.count_chars()):
        char = text.get_text_range(i, 1)
        if char.isspace():
            continue
        left, bottom, right, top = text.get_charbox(i)
        pdfium_c.FPDFText_GetCharOrigin(text.raw, i, ctypes.byref(x), ctypes.byref(y))
        boxes.append(
            (
                char,
                left / MM,
                (height - top) / MM,
                right / MM,
                (height - bottom) / MM,
                (height - y.value) / MM,
            )
        )
    return boxes


def page_image(page: pypdfium2.PdfPage):
    """`page` rendered at 203 dpi, as a label printer would print it."""
    return page.render(scale=DPI / 72).to_pil()


def label_image(page: pypdfium2.PdfPage, layout_key: str, cell: int, image=None):
    """The 203 dpi picture of one label cell of `page`, cut out exactly at the label's edges."""
    layout = PRESETS[layout_key]
    image = image or page_image(page)
    _, x, y = layout.place(cell)
    px = DPI / 25.4
    return image.crop(
        (
            round(x * px),
            round(y * px),
            round((x + layout.label_w) * px),
            round((y + layout.label_h) * px),
        )
    )


def decoded(image) -> list[str]:
    return [
        code.text for code in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    ]


class TestPages:
    """Page size and page count per layout preset."""

    @pytest.mark.parametrize("key", list(PRESETS))
    def test_the_page_size_is_the_presets(self, tmp_path, key):
        pdf = open_pdf(render(tmp_path / "l.pdf", labels(3), key))
        layout = PRESETS[key]
        for page in pdf:
            width, height = page.get_size()
            assert width / MM == pytest.approx(layout.page_w, abs=0.01)
            assert height / MM == pytest.approx(layout.page_h, abs=0.01)

    @pytest.mark.parametrize("key", [k for k, layout in PRESETS.items() if not layout.is_sheet])
    def test_a_roll_has_one_page_per_label(self, tmp_path, key):
        assert len(open_pdf(render(tmp_path / "l.pdf", labels(7), key))) == 7

    @pytest.mark.parametrize(
        ("key", "count", "start"),
        [
            ("a4_3x8", 24, 1),
            ("a4_3x8", 25, 1),
            ("a4_3x8", 20, 5),
            ("a4_3x8", 21, 5),
            ("a4_3x8", 1, 24),
            ("a4_3x8", 2, 24),
            ("a4_2x7", 30, 3),
            ("a4_2x7", 14, 1),
        ],
    )
    def test_sheets_hold_the_labels_after_the_start_position(self, tmp_path, key, count, start):
        pdf = open_pdf(render(tmp_path / "l.pdf", labels(count), key, start_position=start))
        assert len(pdf) == math.ceil((count + start - 1) / PRESETS[key].per_page)

    def test_an_empty_writer_still_makes_a_valid_one_page_pdf(self, tmp_path):
        assert len(open_pdf(render(tmp_path / "l.pdf", []))) == 1


class TestPlacement:
    """Start position on a partly used sheet, and the printer offset."""

    def test_the_first_label_goes_to_the_start_position_and_earlier_cells_stay_empty(
        self, tmp_path
    ):
        pdf = open_pdf(render(tmp_path / "l.pdf", labels(3), "a4_3x8", start_position=5))
        page = pdf[0]
        layout = PRESETS["a4_3x8"]
        for cell in range(4):
            _, x, y = layout.place(cell)
            inside = [
                c
                for c, left, top, *_ in char_boxes(page)
                if x <= left < x + layout.label_w and y <= top < y + layout.label_h
            ]
            assert not inside, f"cell {cell + 1} should be empty"
        assert decoded(label_image(page, "a4_3x8", 4)) == ["P2648-00001"]
        assert decoded(label_image(page, "a4_3x8", 6)) == ["P2648-00003"]

    def test_the_printer_offset_moves_text_and_code_by_the_offset(self, tmp_path):
        plain = open_pdf(render(tmp_path / "a.pdf", labels(1)))[0]
        moved = open_pdf(render(tmp_path / "b.pdf", labels(1), offset_x=2.0, offset_y=-1.5))[0]
        (_, left_a, top_a, *_), (_, left_b, top_b, *_) = char_boxes(plain)[0], char_boxes(moved)[0]
        assert left_b - left_a == pytest.approx(2.0, abs=0.02)
        assert top_b - top_a == pytest.approx(-1.5, abs=0.02)
        px = DPI / 25.4
        code_a = zxingcpp.read_barcodes(page_image(plain))[0].position
        code_b = zxingcpp.read_barcodes(page_image(moved))[0].position
        assert code_b.top_left.x - code_a.top_left.x == pytest.approx(2.0 * px, abs=1.5)
        assert code_b.top_left.y - code_a.top_left.y == pytest.approx(-1.5 * px, abs=1.5)


class TestText:
    """Everything on a label is printed in full with the embedded Noto Sans."""

    @pytest.mark.parametrize("key", list(PRESETS))
    def test_lot_number_name_and_details_are_on_the_label(self, tmp_path, key):
        text = page_text(open_pdf(render(tmp_path / "l.pdf", labels(1), key))[0])
        for expected in (
            "P2648-00001",
            "Hydrangea",
            "macrophylla",
            "'Bodensee'",
            "P9 · 48× · 2026-W48",
            "Kas 1 – tafel 04",
            "Hovenier Ünal",
        ):
            assert expected in text

    @pytest.mark.parametrize("key", list(PRESETS))
    def test_a_very_long_plant_name_is_printed_in_full_inside_the_label(self, tmp_path, key):
        pdf = open_pdf(render(tmp_path / "l.pdf", labels(1, LONG_NAME), key))
        page = pdf[0]
        words = page_text(page).split()
        for word in LONG_NAME.split():
            assert word in words, f"{word!r} is missing"
        layout = PRESETS[key]
        _, x, y = layout.place(0)
        for char, left, top, right, bottom in char_boxes(page):
            assert x - 0.01 <= left and right <= x + layout.label_w + 0.01, char
            assert y - 0.01 <= top and bottom <= y + layout.label_h + 0.01, char

    @pytest.mark.parametrize("key", list(PRESETS))
    def test_text_neither_overlaps_the_code_nor_other_lines(self, tmp_path, key):
        label = labels(1, LONG_NAME)[0]
        page = open_pdf(render(tmp_path / "l.pdf", [label], key))[0]
        code = zxingcpp.read_barcodes(page_image(page))[0].position
        code_right = max(code.top_right.x, code.bottom_right.x) / (DPI / 25.4)
        chars = _chars(page)
        assert min(left for _, left, *_ in chars) > code_right
        lines: dict[float, list[tuple[float, float]]] = {}
        for _, _, top, _, bottom, baseline in chars:  # the glyphs' ink, line by line
            lines.setdefault(round(baseline, 2), []).append((top, bottom))
        assert len(lines) > 4
        spans = [
            (min(t for t, _ in ink), max(b for _, b in ink)) for _, ink in sorted(lines.items())
        ]
        for (_, bottom), (top, _) in itertools.pairwise(spans):
            assert top >= bottom - 0.02, "two lines overlap"

    def test_unicode_beyond_latin_1_renders_and_extracts_exactly(self, tmp_path):
        name = "“Łąkowski” Øresund Straße € ë ł ß ő ž č ğ Œ — Ελληνικά Кириллица №5 ½"
        label = LabelData(
            title="Ø-Ł-€ 12",
            qr="Ø-Ł-€ 12",
            name=name,
            details="Größe P9 · 48×",
            lines=("Ogrody Łąkowski", "Jardinerie Lefèvre"),
        )
        page = open_pdf(render(tmp_path / "l.pdf", [label], "roll_102x51"))[0]
        text = page_text(page)
        for word in (*name.split(), "Ø-Ł-€", "Größe", "Łąkowski", "Lefèvre"):
            assert word in text
        assert decoded(label_image(page, "roll_102x51", 0)) == ["Ø-Ł-€ 12"]

    def test_only_embedded_noto_sans_fonts_are_used_never_a_latin_1_core_font(self, tmp_path):
        path = render(tmp_path / "l.pdf", labels(2) + [LabelData("Łódź", "x", "Żółć € “q”")])
        with pikepdf.open(path) as pdf:
            fonts = [
                obj
                for obj in pdf.objects
                if isinstance(obj, pikepdf.Dictionary) and obj.get("/Type") == "/Font"
            ]
            assert fonts
            for font in fonts:
                assert font.Subtype in ("/Type0", "/CIDFontType2"), font.Subtype
                assert re.fullmatch(r"/[A-Z]{6}\+NotoSans(Bold)?", str(font.BaseFont))
                if font.Subtype == "/CIDFontType2":
                    assert "/FontFile2" in font.FontDescriptor  # embedded (subset) TrueType

    def test_characters_the_font_lacks_do_not_break_the_render(self, tmp_path):
        label = LabelData(title="P1", qr="P1", name="Prunus serrulata 桜 'Kanzan'")
        page = open_pdf(render(tmp_path / "l.pdf", [label]))[0]
        assert "Kanzan" in page_text(page)


class TestFit:
    """Shrink first, then wrap; never cut."""

    def test_a_short_text_keeps_its_nominal_size_on_one_line(self):
        assert fit("Acer", 40, 10, 8.5) == (8.5, ("Acer",))

    def test_a_slightly_long_text_shrinks_on_one_line(self):
        text = "Hydrangea macrophylla 'Bodensee'"
        width = text_width(text) * 8.5
        size, lines = fit(text, width * 0.85, 10, 8.5)
        assert lines == (text,) and size == pytest.approx(8.5 * 0.85)

    def test_a_long_text_wraps_and_keeps_every_word(self):
        size, lines = fit(LONG_NAME, 30, 14, 8.5)
        assert len(lines) > 1 and " ".join(lines).split() == LONG_NAME.split()
        assert all(text_width(line) * size <= 30 + 1e-6 for line in lines)

    def test_a_word_wider_than_the_box_is_split_between_letters_not_dropped(self):
        word = "Supercalifragilisticexpialidocious" * 2
        size, lines = fit(word, 10, 30, 8.5)
        assert "".join(lines) == word


class TestQrCodes:
    """Every code decodes at label-printer resolution and carries the lot number."""

    @pytest.mark.parametrize("key", list(PRESETS))
    def test_every_code_on_every_page_decodes_to_its_lot_number(self, tmp_path, key):
        layout = PRESETS[key]
        count = 3 if not layout.is_sheet else layout.per_page + 2
        items = labels(count)
        items[1] = LabelData(
            title="P2648-00002", qr="P2648-00002-LONGER-LOT-NUMBER-ABCDEFGHIJ", name="Acer"
        )  # a longer payload: a bigger code (more modules)
        pdf = open_pdf(render(tmp_path / "l.pdf", items, key))
        images = [page_image(page) for page in pdf]
        for slot, label in enumerate(items):
            page, _, _ = layout.place(slot)
            cell = slot % layout.per_page
            image = label_image(pdf[page], key, cell, images[page])
            assert decoded(image) == [label.qr], f"label {slot + 1}"


class TestDeterminism:
    """Identical input gives identical bytes; the creation date comes from the data."""

    def test_the_same_labels_give_the_same_bytes(self, tmp_path):
        a = render(tmp_path / "a.pdf", labels(30), "a4_3x8").read_bytes()
        b = render(tmp_path / "b.pdf", labels(30), "a4_3x8").read_bytes()
        assert a == b

    def test_the_creation_date_is_the_one_given_not_now(self, tmp_path):
        a = render(tmp_path / "a.pdf", labels(2))
        b = render(tmp_path / "b.pdf", labels(2), created=datetime(2026, 11, 24, 9, 30))
        with pikepdf.open(a) as pdf:
            assert str(pdf.docinfo["/CreationDate"]).startswith("D:20261123093000")
        assert a.read_bytes() != b.read_bytes()


class FakeLease:
    def __init__(self) -> None:
        self.done: list[int] = []

    def progress(self, done: int, step: str | None = None, *, force: bool = False) -> None:
        self.done.append(done)


def lot_job(ids: list[int], **params) -> Job:
    full = {
        "lot_ids": ids,
        "layout": "roll_62x29",
        "start_position": 1,
        "copies": 1,
        "offset_x": 0.0,
        "offset_y": 0.0,
        **params,
    }
    return Job(kind="potting_lot_labels", params=full, progress_total=len(ids) * full["copies"])


class TestPottingLotRender:
    """`potting_lot_labels` render(): whole batches, chunks, copies."""

    def test_two_renders_of_the_same_lots_are_byte_identical_and_dated_by_the_data(
        self, ctx, lots, tmp_path
    ):
        kind = PottingLotLabels()
        job = lot_job([1, 2, 3])
        kind.render(job, FakeLease(), tmp_path / "a.pdf", None)
        kind.render(job, FakeLease(), tmp_path / "b.pdf", None)
        assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
        newest = max(db.session.get(PottingLot, i).updated_at for i in (1, 2, 3))
        with pikepdf.open(tmp_path / "a.pdf") as pdf:
            assert str(pdf.docinfo["/CreationDate"]).startswith(newest.strftime("D:%Y%m%d%H%M"))

    def test_copies_follow_each_other_and_progress_reaches_the_total(self, ctx, lots, tmp_path):
        lease = FakeLease()
        PottingLotLabels().render(lot_job([2, 1], copies=2), lease, tmp_path / "l.pdf", None)
        pdf = open_pdf(tmp_path / "l.pdf")
        numbers = [db.session.get(PottingLot, i).lot_number for i in (2, 2, 1, 1)]
        assert [page_text(page).split()[0] for page in pdf] == numbers
        assert lease.done[-1] == 4

    def test_chunks_merged_in_order_equal_the_whole_batch(self, ctx, lots, tmp_path):
        ids = list(range(1, 41))
        job = lot_job(ids, layout="a4_3x8", start_position=5)
        kind = PottingLotLabels()
        kind.render(job, FakeLease(), tmp_path / "whole.pdf", None)
        bounds = part_bounds(len(ids), PRESETS["a4_3x8"], 5, 10)
        assert len(bounds) > 1
        merged = pikepdf.Pdf.new()
        for index, (start, stop) in enumerate(bounds):
            part = tmp_path / f"part{index}.pdf"
            kind.render(job, FakeLease(), part, Part(index, start, stop))
            merged.pages.extend(pikepdf.open(part).pages)
        merged.save(tmp_path / "merged.pdf")
        whole, parts = open_pdf(tmp_path / "whole.pdf"), open_pdf(tmp_path / "merged.pdf")
        assert len(whole) == len(parts) == 2
        for a, b in zip(whole, parts, strict=True):
            assert page_text(a) == page_text(b)
        with pikepdf.open(tmp_path / "merged.pdf") as pdf:  # each chunk's subsets: own names
            names = {
                str(obj.BaseFont)
                for obj in pdf.objects
                if isinstance(obj, pikepdf.Dictionary) and obj.get("/Subtype") == "/Type0"
            }
        assert len(names) == 2 * len(bounds)

    def test_a_label_shows_the_lots_fields(self, ctx, lots, tmp_path):
        lot = db.session.get(PottingLot, 7)
        label = label_for(lot)
        assert (label.title, label.qr, label.name) == (
            lot.lot_number,
            lot.lot_number,
            lot.plant_name,
        )
        assert lot.pot_size in label.details and quantity_text(lot.quantity) in label.details
        assert label.lines == (lot.location, lot.customer or "")  # a slot per field, kept empty


class TestSize:
    """DESIGN §6: under 2 KB per label."""

    @pytest.mark.parametrize("key", ["roll_62x29", "a4_3x8"])
    def test_a_batch_stays_under_two_kilobytes_per_label(self, tmp_path, key):
        path = render(tmp_path / "l.pdf", labels(200), key)
        assert path.stat().st_size / 200 < 2048


class TestFontCache:
    """The static font instances are made once per machine and loaded once per process."""

    def test_instances_are_made_once_and_then_reused(self, tmp_path, monkeypatch):
        from webapp.pdf import fonts

        real = {style: fonts.static_font(style) for style in fonts.WEIGHTS}
        made: list[str] = []

        def fake_make(style: str, target: Path) -> None:  # instancing takes ~15 s: copy instead
            made.append(style)
            target.write_bytes(real[style].read_bytes())

        monkeypatch.setenv("PRESSROOM_FONT_CACHE", str(tmp_path / "fonts"))
        monkeypatch.setattr(fonts, "_make_instance", fake_make)
        fonts.static_font.cache_clear()
        try:
            first = fonts.warm()
            fonts.static_font.cache_clear()  # a new process on the same machine
            again = fonts.warm()
        finally:
            fonts.static_font.cache_clear()
        assert sorted(made) == sorted(fonts.WEIGHTS)
        assert first == again and all(p.parent == tmp_path / "fonts" for p in first)

    def test_the_instances_have_their_own_names_and_no_hinting(self):
        from fontTools.ttLib import TTFont

        from webapp.pdf import fonts

        regular, bold = (TTFont(fonts.static_font(style)) for style in ("", "B"))
        assert regular["name"].getDebugName(6) == "NotoSans-Regular"
        assert bold["name"].getDebugName(6) == "NotoSans-Bold"
        assert bold["OS/2"].usWeightClass == 700 and regular["OS/2"].usWeightClass == 400
        for font in (regular, bold):
            assert "fpgm" not in font and "GSUB" not in font
            assert ord("ł") in font.getBestCmap() and ord("€") in font.getBestCmap()

    def test_warming_a_process_loads_the_glyph_widths(self):
        from webapp.pdf import labels as labels_module

        labels_module.warm()
        assert labels_module._measure_pdf is not None
        assert "ł" in labels_module._CHAR_MM[""] and "W" in labels_module._CHAR_MM["B"]
