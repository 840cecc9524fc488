"""Label geometry in millimetres: roll (one label per page) or sheet (a grid per page)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    key: str
    name: str
    page_w: float
    page_h: float
    label_w: float
    label_h: float
    cols: int = 1
    rows: int = 1
    left: float = 0.0  # first label's offset from the page's top-left corner
    top: float = 0.0
    gap_x: float = 0.0
    gap_y: float = 0.0
    pad: float | None = None  # inner margin of a label; None: 6 % of its height, at least 1.5
    dpi: int = 203  # the printer's resolution (label printers: 203; QR pre-flight)

    @property
    def per_page(self) -> int:
        return self.cols * self.rows

    @property
    def is_sheet(self) -> bool:
        return self.per_page > 1

    def place(self, slot: int) -> tuple[int, float, float]:
        """(page index, x, y) of slot `slot` (0-based, counted across pages, row by row)."""
        page, cell = divmod(slot, self.per_page)
        row, col = divmod(cell, self.cols)
        return (
            page,
            self.left + col * (self.label_w + self.gap_x),
            self.top + row * (self.label_h + self.gap_y),
        )


PRESETS: dict[str, Layout] = {
    layout.key: layout
    for layout in (
        Layout("roll_62x29", "Label roll 62 × 29 mm (Brother DK-11209)", 62, 29, 62, 29),
        Layout("roll_57x32", "Label roll 57 × 32 mm (Zebra, Dymo)", 57, 32, 57, 32),
        Layout("roll_102x51", "Label roll 102 × 51 mm (large tags)", 102, 51, 102, 51),
        Layout(
            "a4_3x8",
            "A4 sheet, 3 × 8 labels of 70 × 37 mm",
            210,
            297,
            70,
            37,
            cols=3,
            rows=8,
            left=0,
            top=0.5,
            pad=4.0,
            dpi=300,
        ),  # edge to edge: office printers
        # leave ~4 mm at the paper's edge
        Layout(
            "a4_2x7",
            "A4 sheet, 2 × 7 labels of 99.1 × 38.1 mm (L7163)",
            210,
            297,
            99.1,
            38.1,
            cols=2,
            rows=7,
            left=4.65,
            top=15.15,
            gap_x=2.5,
            dpi=300,
        ),
    )
}
DEFAULT_LAYOUT = "roll_62x29"


def part_bounds(
    total: int, layout: Layout, start_position: int, per_part: int
) -> list[tuple[int, int]]:
    """Split `total` labels into [start, stop) ranges; on sheets every part begins a new page."""
    if total <= per_part:
        return [(0, total)]
    per_page = layout.per_page
    step = max(per_page, per_part - per_part % per_page)  # whole pages per part
    offset = start_position - 1  # empty slots on the first page
    bounds, start = [], 0
    while start < total:
        stop = min(total, (start + offset) // per_page * per_page + step - offset)
        bounds.append((start, stop))
        start = stop
    return bounds


# -- a user's own layout (printer profiles) ---------------------------------------------------

CUSTOM = "custom"


def custom(spec: dict[str, float | int | str]) -> Layout:
    """A roll (one label per page) or a sheet (a grid on a page) from a user's sizes in mm.

    `spec` is checked by the kind's params schema (webapp/documents/potting_lots.py) first;
    `overflow()` says whether the grid fits its page."""
    label_w, label_h = float(spec["label_w"]), float(spec["label_h"])
    if spec.get("kind") != "sheet":
        return Layout(CUSTOM, "Custom roll", label_w, label_h, label_w, label_h)
    return Layout(
        CUSTOM,
        "Custom sheet",
        float(spec["page_w"]),
        float(spec["page_h"]),
        label_w,
        label_h,
        cols=int(spec.get("cols", 1)),
        rows=int(spec.get("rows", 1)),
        left=float(spec.get("left", 0)),
        top=float(spec.get("top", 0)),
        gap_x=float(spec.get("gap_x", 0)),
        gap_y=float(spec.get("gap_y", 0)),
    )


def overflow(layout: Layout) -> tuple[str, float] | None:
    """("width" | "height", mm too many) when the labels and gaps run past the page's edge."""
    right = layout.left + layout.cols * layout.label_w + (layout.cols - 1) * layout.gap_x
    bottom = layout.top + layout.rows * layout.label_h + (layout.rows - 1) * layout.gap_y
    if right > layout.page_w + 0.01:
        return "width", round(right - layout.page_w, 1)
    if bottom > layout.page_h + 0.01:
        return "height", round(bottom - layout.page_h, 1)
    return None


def resolve(key: str, spec: dict[str, float | int | str] | None = None) -> Layout:
    """A preset by key, or the custom layout `spec` describes (KeyError when neither)."""
    if key == CUSTOM and spec:
        return custom(spec)
    return PRESETS[key]
