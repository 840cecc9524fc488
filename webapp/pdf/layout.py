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
