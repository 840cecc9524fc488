"""Label geometry (webapp.pdf.layout): where each label goes, and how big batches are split."""

from __future__ import annotations

import itertools

import pytest

from webapp.pdf.layout import DEFAULT_LAYOUT, PRESETS, Layout, part_bounds

ROLLS = [key for key, layout in PRESETS.items() if not layout.is_sheet]
SHEETS = [key for key, layout in PRESETS.items() if layout.is_sheet]


class TestPresets:
    """Every preset is a real roll or sheet."""

    def test_there_are_roll_and_sheet_presets_and_the_default_is_one_of_them(self):
        assert ROLLS and SHEETS and DEFAULT_LAYOUT in PRESETS

    @pytest.mark.parametrize("key", ROLLS)
    def test_a_roll_page_is_exactly_one_label(self, key):
        layout = PRESETS[key]
        assert (layout.page_w, layout.page_h) == (layout.label_w, layout.label_h)
        assert layout.per_page == 1

    @pytest.mark.parametrize("key", SHEETS)
    def test_a_sheet_is_a4_portrait_with_a_grid(self, key):
        layout = PRESETS[key]
        assert (layout.page_w, layout.page_h) == (210, 297)
        assert layout.cols > 1 and layout.rows > 1

    @pytest.mark.parametrize("key", list(PRESETS))
    def test_every_label_of_a_page_lies_inside_the_page(self, key):
        layout = PRESETS[key]
        for slot in range(layout.per_page):
            page, x, y = layout.place(slot)
            assert page == 0
            assert x >= 0 and y >= 0
            assert x + layout.label_w <= layout.page_w + 1e-9
            assert y + layout.label_h <= layout.page_h + 1e-9

    @pytest.mark.parametrize("key", SHEETS)
    def test_labels_on_a_sheet_do_not_overlap(self, key):
        layout = PRESETS[key]
        boxes = [layout.place(slot)[1:] for slot in range(layout.per_page)]
        for (x1, y1), (x2, y2) in itertools.combinations(boxes, 2):
            apart = abs(x1 - x2) >= layout.label_w - 1e-9 or abs(y1 - y2) >= layout.label_h - 1e-9
            assert apart, f"labels at {(x1, y1)} and {(x2, y2)} overlap"


class TestPlace:
    """`place(slot)` counts slots row by row, page after page."""

    def test_roll_slots_are_pages(self):
        layout = PRESETS["roll_62x29"]
        assert [layout.place(slot) for slot in range(3)] == [(0, 0, 0), (1, 0, 0), (2, 0, 0)]

    def test_sheet_slots_fill_a_row_then_the_next_row(self):
        layout = Layout("t", "test", 210, 297, 70, 37, cols=3, rows=8, left=0, top=0.5)
        assert layout.place(0) == (0, 0, 0.5)
        assert layout.place(2) == (0, 140, 0.5)
        assert layout.place(3) == (0, 0, 37.5)
        assert layout.place(23) == (0, 140, 0.5 + 7 * 37)

    def test_slots_after_a_full_sheet_go_to_the_next_page(self):
        layout = PRESETS["a4_3x8"]
        assert layout.place(24) == (1, *layout.place(0)[1:])
        assert layout.place(24 * 5 + 4) == (5, *layout.place(4)[1:])

    def test_gaps_and_margins_shift_the_columns(self):
        layout = PRESETS["a4_2x7"]
        _, x0, y0 = layout.place(0)
        _, x1, _ = layout.place(1)
        _, _, y2 = layout.place(2)
        assert (x0, y0) == (layout.left, layout.top)
        assert x1 == pytest.approx(layout.left + layout.label_w + layout.gap_x)
        assert y2 == pytest.approx(layout.top + layout.label_h + layout.gap_y)


def _check_parts(total: int, layout: Layout, start_position: int, per_part: int) -> None:
    bounds = part_bounds(total, layout, start_position, per_part)
    # The parts cover every label exactly once, in order.
    assert bounds[0][0] == 0 and bounds[-1][1] == total
    for (_, stop), (start, _) in itertools.pairwise(bounds):
        assert stop == start
    assert all(start < stop for start, stop in bounds)
    offset = start_position - 1
    step = max(layout.per_page, per_part - per_part % layout.per_page)
    if len(bounds) == 1:  # small enough for one part (a part is at least the first sheet)
        assert total <= max(per_part, step - offset)
        return
    for index, (start, stop) in enumerate(bounds):
        if index:  # every part after the first begins a new page (a sheet is printed whole)
            assert (start + offset) % layout.per_page == 0, (total, start_position, per_part)
        assert stop - start <= step
        if index < len(bounds) - 1:  # only the last part ends mid-page
            assert (stop + offset) % layout.per_page == 0


class TestPartBounds:
    """Big batches split into parts for parallel chunks."""

    def test_a_batch_that_fits_one_part_is_not_split(self):
        assert part_bounds(1000, PRESETS["roll_62x29"], 1, 1000) == [(0, 1000)]
        assert part_bounds(7, PRESETS["a4_3x8"], 20, 1000) == [(0, 7)]

    def test_a_roll_batch_is_cut_into_equal_parts(self):
        assert part_bounds(2500, PRESETS["roll_62x29"], 1, 1000) == [
            (0, 1000),
            (1000, 2000),
            (2000, 2500),
        ]

    def test_sheet_parts_hold_whole_sheets(self):
        # 1000 labels per part on 24-label sheets: 41 sheets (984 labels) per part.
        assert part_bounds(2000, PRESETS["a4_3x8"], 1, 1000) == [
            (0, 984),
            (984, 1968),
            (1968, 2000),
        ]

    def test_the_start_position_shortens_the_first_part_by_the_skipped_slots(self):
        bounds = part_bounds(2000, PRESETS["a4_3x8"], 5, 1000)
        assert bounds[0] == (0, 984 - 4)
        assert bounds[1] == (980, 1964)

    def test_a_part_is_at_least_one_sheet(self):
        assert part_bounds(50, PRESETS["a4_3x8"], 1, 10) == [(0, 24), (24, 48), (48, 50)]

    @pytest.mark.parametrize("key", list(PRESETS))
    def test_parts_cover_every_label_once_and_start_on_a_page(self, key):
        layout = PRESETS[key]
        for total, per_part in itertools.product(
            (1, 23, 24, 25, 999, 1000, 1001, 10_000), (7, 24, 100, 1000)
        ):
            for start_position in sorted({1, 2, layout.per_page}):
                _check_parts(total, layout, start_position, per_part)
