"""Merging chunk files (webapp.pdf.merge): every page once, in order, intact, deterministic."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pikepdf
import pypdfium2
import pytest
import zxingcpp

from webapp.pdf.labels import LabelData, LabelWriter
from webapp.pdf.layout import PRESETS, part_bounds
from webapp.pdf.merge import merge_pdfs

CREATED = datetime(2026, 11, 23, 9, 30)


def lot(n: int) -> LabelData:
    return LabelData(
        title=f"P2648-{n:05d}",
        qr=f"P2648-{n:05d}",
        name=f"Acer palmatum {n}",
        details="P9 · 48×",
        lines=("Kas 1",),
    )


def chunks(tmp_path: Path, total: int, layout: str, per_part: int, start: int = 1) -> list[Path]:
    paths = []
    for index, (first, stop) in enumerate(part_bounds(total, PRESETS[layout], start, per_part)):
        writer = LabelWriter(
            PRESETS[layout], created=CREATED, start_position=start, first_slot=first
        )
        for slot in range(first, stop):
            writer.add(slot, lot(slot + 1))
        path = tmp_path / f"chunk{index}.pdf"
        writer.output(path)
        paths.append(path)
    return paths


def texts(path: Path) -> list[str]:
    document = pypdfium2.PdfDocument(str(path))
    try:
        return [page.get_textpage().get_text_range() for page in document]
    finally:
        document.close()


class TestMerge:
    """merge_pdfs()"""

    def test_every_page_comes_once_in_order(self, tmp_path):
        paths = chunks(tmp_path, 25, "roll_62x29", 10)
        assert merge_pdfs(paths, tmp_path / "m.pdf") == 25
        assert [t.split()[0] for t in texts(tmp_path / "m.pdf")] == [
            f"P2648-{n:05d}" for n in range(1, 26)
        ]

    def test_pages_keep_their_size_fonts_and_codes(self, tmp_path):
        paths = chunks(tmp_path, 60, "a4_3x8", 24, start=5)
        merge_pdfs(paths, tmp_path / "m.pdf")
        parts = [t for p in paths for t in texts(p)]
        assert texts(tmp_path / "m.pdf") == parts
        document = pypdfium2.PdfDocument(str(tmp_path / "m.pdf"))
        try:
            for page in document:
                assert page.get_size() == pytest.approx((595.28, 841.89), abs=0.01)
            image = document[len(document) - 1].render(scale=203 / 72).to_pil()
            found = {code.text for code in zxingcpp.read_barcodes(image)}
            assert "P2648-00060" in found
        finally:
            document.close()
        with pikepdf.open(tmp_path / "m.pdf") as merged:
            assert all(
                "/MediaBox" in page.obj and "/Resources" in page.obj for page in merged.pages
            )
            assert not merged.check_pdf_syntax()

    def test_the_same_chunks_merge_to_the_same_bytes_with_the_first_files_info(self, tmp_path):
        paths = chunks(tmp_path, 12, "roll_57x32", 5)
        merge_pdfs(paths, tmp_path / "a.pdf")
        merge_pdfs(paths, tmp_path / "b.pdf")
        assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
        with pikepdf.open(tmp_path / "a.pdf") as merged:
            assert str(merged.docinfo["/Title"]) == "Labels"
            assert str(merged.docinfo["/CreationDate"]).startswith("D:20261123093000")

    def test_a_broken_chunk_raises_a_pdf_error(self, tmp_path):
        paths = chunks(tmp_path, 3, "roll_62x29", 2)
        paths[1].write_bytes(b"%PDF-1.4 not really")
        with pytest.raises(pikepdf.PdfError):
            merge_pdfs(paths, tmp_path / "m.pdf")
