"""The lab's reception label (DESIGN §1): 39 × 20 mm, a 12 mm QR code 1 mm from the bottom-left
corner, the text 1 mm to its right. Drawn on the shared label writer (webapp/pdf/labels.py):
the same fonts, QR path and page assembly as the nursery's labels, with the lab's own geometry.

Where the lab's old code cut the texts (number at 8 characters, animal at 10, species at 8),
the number is printed in full, shrunk to fit (it identifies the sample), and the other two are
shortened with an ellipsis only when they do not fit at 5 pt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from webapp.pdf.labels import MM, LabelWriter, text_width
from webapp.pdf.layout import Layout
from webapp.pdf.qr import modules, qr_operators

RECEPTION = Layout("reception_39x20", "Reception label 39 × 20 mm", 39, 20, 39, 20, pad=1.0)
MARGIN = 1.0
QR_SIZE = 12.0
QR_TOP = RECEPTION.label_h - MARGIN - QR_SIZE  # the code sits 1 mm above the bottom edge
TEXT_X = MARGIN + QR_SIZE + 1.0
TEXT_W = RECEPTION.label_w - TEXT_X - MARGIN
NUMBER_PT, SMALL_PT = 8.0, 5.0
# Baselines in mm from the label's top (as the lab's labels have them): number, animal,
# species, analysis type (at the bottom).
BASELINES = (9.0, 12.8, 15.6, 18.6)
#: A QR module must cover at least this many printer dots to print and scan reliably.
MIN_DOTS_PER_MODULE = 2.0
PRINTER_DPI = (203, 300)


@dataclass(frozen=True, slots=True)
class ReceptionLabel:
    number: str  # "HP 26/0001"
    qr: str  # the public page's URL
    animal: str
    species: str
    analysis: str  # "HP" or "CT"


def public_url(site_url: str, external_id: str) -> str:
    return f"{site_url.rstrip('/')}/protocols/public/{external_id}/"


def module_mm(payload: str) -> float:
    """The width of one module of `payload`'s code on the label, in mm."""
    count, _ = modules(payload)
    return QR_SIZE / count


def qr_fits(payload: str, dpi: int) -> tuple[bool, float, float]:
    """(prints reliably, module width, the smallest module allowed) at the printer's `dpi`."""
    smallest = MIN_DOTS_PER_MODULE * 25.4 / dpi
    width = module_mm(payload)
    return width >= smallest, width, smallest


def ellipsize(text: str, width: float, size: float, style: str = "") -> str:
    """`text`, shortened with "…" only when it is wider than `width` mm at `size` pt."""
    if text_width(text, style) * size <= width:
        return text
    cut = len(text)
    while cut > 1 and text_width(text[:cut] + "…", style) * size > width:
        cut -= 1
    return text[:cut].rstrip() + "…"


class ReceptionLabelWriter(LabelWriter):
    """Reception labels, one per page of the roll, in the order they are added."""

    def __init__(self, *, created: datetime) -> None:
        super().__init__(RECEPTION, created=created)
        self.pdf.set_title("Reception labels")

    def add_reception(self, slot: int, label: ReceptionLabel) -> None:
        x, y = self.open_slot(slot)
        number_pt = min(NUMBER_PT, TEXT_W / max(text_width(label.number, "B"), 1e-6))
        runs = (
            ("B", number_pt, BASELINES[0], label.number),
            ("", SMALL_PT, BASELINES[1], ellipsize(label.animal, TEXT_W, SMALL_PT)),
            ("", SMALL_PT, BASELINES[2], ellipsize(label.species, TEXT_W, SMALL_PT)),
            ("", SMALL_PT, BASELINES[3], label.analysis),
        )
        text = " ".join(
            f"/F{self.font_id(style)} {size:.2f} Tf 1 0 0 1 {TEXT_X * MM:.2f} "
            f"{-baseline * MM:.2f} Tm {self.show(style, value)}"
            for style, size, baseline, value in runs
            if value
        )
        # Label coordinates: origin at the label's top-left corner, y upwards.
        self.put(
            f"q 1 0 0 1 {x * MM:.2f} {(self.layout.page_h - y) * MM:.2f} cm 0 g "
            f"{qr_operators(label.qr, MARGIN, QR_TOP, QR_SIZE, 0.0, MM)} BT {text} ET Q"
        )


def write_labels(labels: list[ReceptionLabel], out: Path, *, created: datetime) -> None:
    writer = ReceptionLabelWriter(created=created)
    for slot, label in enumerate(labels):
        writer.add_reception(slot, label)
    writer.output(out)
