"""Guards for the fpdf2 internals the label writer relies on (fpdf2 is pinned to 2.8.9).

The writer puts each label into the page with `FPDF._out` (the QR path and the text) and
encodes text with fpdf2's own font object (`pdf.fonts[key].encode_text`, resource `/F<i>`).
If an fpdf2 upgrade changes any of that, these tests say so before a label comes out wrong.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import pikepdf
import pytest
import zxingcpp
from fpdf import FPDF
from fpdf.errors import FPDFException

from webapp.pdf.fonts import FAMILY, add_fonts, static_font
from webapp.pdf.labels import LabelData, LabelWriter
from webapp.pdf.layout import PRESETS
from webapp.pdf.qr import draw_qr

CREATED = datetime(2026, 11, 23, 9, 30)


def content_of(path: Path, page: int = 0) -> list[pikepdf.ContentStreamInstruction]:
    with pikepdf.open(path) as pdf:
        return list(pikepdf.parse_content_stream(pdf.pages[page]))


def operators(instructions) -> list[str]:
    return [str(i.operator) for i in instructions]


def dark_runs(payload: str) -> int:
    image = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode, ec_level="M").to_image(
        scale=1, add_quiet_zones=False
    )
    return sum(
        len(re.findall(rb"\x00+", bytes(image)[y * image.shape[1] : (y + 1) * image.shape[1]]))
        for y in range(image.shape[0])
    )


class TestPin:
    """The version the internals were checked against."""

    def test_fpdf2_is_the_pinned_version(self):
        assert version("fpdf2") == "2.8.9"

    def test_pyproject_pins_it_exactly(self):
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        assert '"fpdf2==2.8.9"' in pyproject.read_text()


class TestOut:
    """`FPDF._out` appends raw operators to the current page's content stream."""

    def test_out_exists_and_writes_into_the_current_page(self, tmp_path):
        pdf = FPDF()
        pdf.add_page()
        pdf._out("0.5 g 10 20 30 40 re f")
        pdf.output(str(tmp_path / "o.pdf"))
        instructions = content_of(tmp_path / "o.pdf")
        assert [op for op in operators(instructions) if op in ("g", "re", "f")] == ["g", "re", "f"]
        rect = next(i for i in instructions if str(i.operator) == "re")
        assert [float(v) for v in rect.operands] == [10, 20, 30, 40]

    def test_out_refuses_to_write_without_a_page(self):
        with pytest.raises(FPDFException):
            FPDF()._out("0 g")

    def test_draw_qr_is_one_filled_path_of_one_rectangle_per_dark_run(self, tmp_path):
        pdf = FPDF(unit="mm")
        pdf.add_page()
        draw_qr(pdf, "P2648-00001", 10, 10, 25)
        pdf.output(str(tmp_path / "q.pdf"))
        ops = operators(content_of(tmp_path / "q.pdf"))
        start = ops.index("cm")
        end = ops.index("Q", start)
        path = ops[start + 1 : end]
        assert path[-1] == "f" and set(path[:-1]) == {"re"}  # one path, filled once
        assert len(path) - 1 == dark_runs("P2648-00001")


class TestLabelContent:
    """What LabelWriter puts into the page."""

    def render(self, tmp_path: Path, label: LabelData) -> Path:
        writer = LabelWriter(PRESETS["roll_62x29"], created=CREATED)
        writer.add(0, label)
        writer.output(tmp_path / "l.pdf")
        return tmp_path / "l.pdf"

    def test_the_qr_code_is_one_re_path_filled_once_inside_the_label(self, tmp_path):
        path = self.render(tmp_path, LabelData("P2648-00001", "P2648-00001", "Acer"))
        ops = operators(content_of(path))
        first, last = ops.index("re"), len(ops) - 1 - ops[::-1].index("re")
        assert ops[last + 1] == "f"
        assert set(ops[first : last + 1]) == {"re"}
        assert ops.count("re") == dark_runs("P2648-00001") and ops.count("f") == 1

    def test_text_is_encoded_exactly_as_fpdf2s_public_text_method_does(self, tmp_path):
        text = "Łąkowski “Øresund” € ß"
        path = self.render(tmp_path, LabelData(text, "x", text))
        ours = [bytes(i.operands[0]) for i in content_of(path) if str(i.operator) == "Tj"]

        pdf = FPDF(unit="mm")
        add_fonts(pdf)
        pdf.add_page()
        pdf.set_font(FAMILY, "B", 12)
        pdf.text(5, 10, text)  # bold first, then regular: the order the writer encodes them in
        pdf.set_font(FAMILY, "", 8)
        pdf.text(5, 20, text)
        pdf.output(str(tmp_path / "public.pdf"))
        public = [
            bytes(i.operands[0])
            for i in content_of(tmp_path / "public.pdf")
            if str(i.operator) == "Tj"
        ]
        assert ours == public

    def test_the_font_resources_the_text_names_are_the_embedded_noto_fonts(self, tmp_path):
        path = self.render(tmp_path, LabelData("P1", "P1", "Acer"))
        used = [str(i.operands[0]) for i in content_of(path) if str(i.operator) == "Tf"]
        with pikepdf.open(path) as pdf:
            fonts = pdf.pages[0].Resources.Font
            names = {name: str(fonts[name].BaseFont) for name in fonts}
        assert used[0] in names and names[used[0]].endswith("+NotoSansBold")
        assert {names[name].split("+")[1] for name in used} == {"NotoSans", "NotoSansBold"}

    def test_fpdf2_still_tags_its_subsets_mpdfaa_which_the_writer_replaces(self, tmp_path):
        pdf = FPDF()
        add_fonts(pdf)
        pdf.add_page()
        pdf.set_font(FAMILY, "", 10)
        pdf.text(10, 10, "x")
        assert b"/MPDFAA+NotoSans" in bytes(pdf.output())
        path = self.render(tmp_path, LabelData("P1", "P1", "Acer"))
        assert b"MPDFAA" not in path.read_bytes()


class TestFontCopies:
    """add_fonts() hands every document a copy of a font parsed once per process."""

    @staticmethod
    def document(register) -> bytes:
        pdf = FPDF(unit="mm")
        pdf.set_creation_date(CREATED.replace(tzinfo=UTC))
        register(pdf)
        pdf.add_page()
        for style, text in (
            ("B", "P2648-00001 Ø"),
            ("", "Łąkowski “Øresund” € ß Кириллица"),
            ("", "Hydrangea macrophylla 'Bodensee'"),
        ):
            pdf.set_font(FAMILY, style, 10)
            pdf.text(5, 10, text)
        return bytes(pdf.output())

    def test_a_copied_font_gives_the_same_bytes_as_add_font(self):
        def parsed_here(pdf: FPDF) -> None:
            for style in ("", "B"):
                pdf.add_font(FAMILY, style, static_font(style))

        assert self.document(add_fonts) == self.document(parsed_here)

    def test_documents_do_not_share_subsets_or_descriptors(self):
        first = self.document(add_fonts)
        pdf = FPDF()
        add_fonts(pdf)
        pdf.add_page()
        pdf.set_font(FAMILY, "", 10)
        pdf.text(10, 10, "zzz ÆØÅ")  # other glyphs in a document made in between
        pdf.output()
        assert self.document(add_fonts) == first
        a, b = FPDF(), FPDF()
        add_fonts(a)
        add_fonts(b)
        for style in ("", "B"):
            fa, fb = a.fonts[FAMILY + style], b.fonts[FAMILY + style]
            assert fa.subset is not fb.subset and fa.ttfont is not fb.ttfont
            assert fa.desc is not fb.desc and fa.missing_glyphs is not fb.missing_glyphs
