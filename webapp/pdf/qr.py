"""QR codes drawn as one vector path: a rectangle per horizontal run of dark modules.

zxing-cpp encodes (~0.1 ms per code; qrcode's automatic version and mask search costs 1-6 ms).
`qr_operators` returns the path as PDF operators; the label writer puts them into its own
content streams. `draw_qr` writes them into an fpdf2 page with `FPDF._out`: fpdf2 has no public
API fast enough (its drawing API costs ~8 ms per code, a `rect()` per run ~0.7 ms). fpdf2 is
pinned in pyproject.toml and tests/unit/test_pdf_fpdf_internals.py guards this use.
"""

from __future__ import annotations

import re
from functools import lru_cache

import zxingcpp
from fpdf import FPDF

#: A module must cover at least this many printer dots to print and scan reliably (the lab's
#: reception labels use the same rule: webapp/lab/labels.py).
MIN_DOTS_PER_MODULE = 2.0
QUIET = 4  # zxing-cpp's quiet zone, in modules; it keeps every dark run inside its row
DARK_RUN = re.compile(rb"\x00+")


ROW_CACHE_LIMIT = 50_000  # row variants kept per process (~12 MB at most), then start over
_rows: dict[int, list[dict[bytes, str]]] = {}  # image width → [y] → row pixels → operators
_cached = 0


_run_ops: dict[int, str] = {}  # (y, x, length) packed in an int → "x y w 1 re"


def _row_ops(row: bytes, y: int) -> str:
    ops = []
    for match in DARK_RUN.finditer(row):
        start, end = match.span()
        key = (y * 256 + start) * 256 + end
        op = _run_ops.get(key)
        if op is None:  # at most (side + 8)^3 / 2 of them per code size: bounded
            op = _run_ops[key] = f"{start - QUIET} {y - QUIET} {end - start} 1 re"
        ops.append(op)
    return " ".join(ops)


def encode(payload: str) -> tuple[int, str]:
    """(size in modules, "x y w 1 re" operators of every dark run) for `payload`, uncached.

    Rows repeat across codes (finder patterns, timing lines, format bits), so the operators of a
    row are cached by its pixels: that halves the cost after zxing-cpp's own ~0.1 ms.
    """
    global _cached
    code = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    image = code.to_image(scale=1, add_quiet_zones=True)
    width = image.shape[1]
    pixels = bytes(image)  # type: ignore[call-overload]  # zxing's Image has the buffer protocol
    if _cached > ROW_CACHE_LIMIT:
        _rows.clear()
        _cached = 0
    rows = _rows.get(width) or _rows.setdefault(width, [{} for _ in range(width)])
    out = []
    for y in range(QUIET, width - QUIET):
        row = pixels[y * width : (y + 1) * width]
        ops = rows[y].get(row)
        if ops is None:
            ops = rows[y][row] = _row_ops(row, y)
            _cached += 1
        out.append(ops)
    return width - 2 * QUIET, " ".join(out)


#: Copies of a label share their code; a batch of distinct lots never hits this cache.
modules = lru_cache(maxsize=1024)(encode)


def qr_operators(payload: str, x: float, y: float, size: float, page_h: float, k: float) -> str:
    """PDF operators that fill the code of `payload` at (x, y) mm from the top-left, `size` wide."""
    count, ops = modules(payload)
    scale = size / count * k
    # Module units, y growing down from the code's top-left corner; one filled path.
    return f"q 0 g {scale:.4f} 0 0 {-scale:.4f} {x * k:.2f} {(page_h - y) * k:.2f} cm {ops} f Q"


def draw_qr(pdf: FPDF, payload: str, x: float, y: float, size: float) -> None:
    """Draw the QR code of `payload` with its top-left corner at (x, y), `size` wide, in mm."""
    pdf._out(qr_operators(payload, x, y, size, pdf.h, pdf.k))


def smallest_module(dpi: int) -> float:
    """The smallest module width in mm a `dpi` printer prints reliably."""
    return MIN_DOTS_PER_MODULE * 25.4 / dpi


ALPHANUMERIC = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
_counts: dict[tuple[str, int], int] = {}  # (mode, length) → side in modules


def shape(payload: str) -> tuple[str, int]:
    """What decides a code's version: zxing-cpp encodes a payload in one mode (numeric,
    alphanumeric, else bytes: Latin-1 when it fits, UTF-8 with an ECI header when not) and
    picks the smallest version its length fits."""
    if payload.isdigit() and payload.isascii():
        return "n", len(payload)
    if set(payload) <= ALPHANUMERIC:
        return "a", len(payload)
    try:
        return "l", len(payload.encode("latin-1"))
    except UnicodeEncodeError:
        return "u", len(payload.encode("utf-8"))


def module_count(payload: str) -> int:
    """The code's side in modules without drawing it, the same for every payload of its
    `shape` (a submit checks the selection's longest lot numbers: encoded once per shape)."""
    key = shape(payload)
    count = _counts.get(key)
    if count is None:
        code = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
        count = _counts[key] = int(code.to_image(scale=1, add_quiet_zones=False).shape[1])
    return count


def module_fits(payload: str, size: float, dpi: int) -> tuple[bool, float, float]:
    """(prints reliably, module width in mm, the smallest allowed) for `payload`'s code drawn
    `size` mm wide on a `dpi` printer."""
    count = module_count(payload)
    width = size / count
    smallest = smallest_module(dpi)
    return width >= smallest - 1e-9, width, smallest
