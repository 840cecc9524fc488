"""QR codes drawn as one vector path: a rectangle per horizontal run of dark modules.

zxing-cpp encodes (~0.1 ms per code; qrcode's automatic version and mask search costs 1-6 ms).
The path is written straight into the page's content stream with `FPDF._out`: fpdf2 has no
public API fast enough (its drawing API costs ~8 ms per code). fpdf2 is pinned in
pyproject.toml and tests/unit/test_pdf_labels.py guards this use.
"""

from __future__ import annotations

import re
from functools import lru_cache

import zxingcpp
from fpdf import FPDF

DARK_RUN = re.compile(rb"\x00+")


@lru_cache(maxsize=8192)
def modules(payload: str) -> tuple[int, str]:
    """(size in modules, "x y w 1 re" operators of every dark run) for `payload`."""
    code = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    image = code.to_image(scale=1, add_quiet_zones=False)
    size = image.shape[1]
    pixels = bytes(image)
    ops = []
    for y in range(image.shape[0]):
        row = y * size  # finditer's offsets are absolute in `pixels`
        ops.extend(f"{m.start() - row} {y} {m.end() - m.start()} 1 re"
                   for m in DARK_RUN.finditer(pixels, row, row + size))
    return size, " ".join(ops)


def draw_qr(pdf: FPDF, payload: str, x: float, y: float, size: float) -> None:
    """Draw the QR code of `payload` with its top-left corner at (x, y), `size` wide, in mm."""
    count, ops = modules(payload)
    scale = size / count * pdf.k
    # Module units, y growing down from the code's top-left corner; one filled path.
    pdf._out(f"q 0 g {scale:.4f} 0 0 {-scale:.4f} {x * pdf.k:.2f} {(pdf.h - y) * pdf.k:.2f} cm "
             f"{ops} f Q")
