"""The preview images shown before a batch starts: one label, or the first sheet as printed."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pypdfium2
from PIL import ImageDraw

from webapp.errors import InvalidParams
from webapp.models import PottingLot
from webapp.nursery.labels import DEFAULT_LOCALE, label_for
from webapp.pdf.labels import LabelWriter, plan
from webapp.pdf.layout import Layout, resolve

# The sheet preview's colours: the page, a skipped position (hatched), the first label's frame.
EDGE = (150, 160, 155)
CELL = (205, 212, 208)
SKIPPED = (232, 234, 233)
HATCH = (178, 184, 181)
START = (45, 106, 79)


def _locale() -> str:
    """The reader's language: numbers on the preview as the table writes them."""
    from flask import has_request_context
    from flask_babel import get_locale

    locale = get_locale() if has_request_context() else None
    return str(locale.language) if locale is not None else DEFAULT_LOCALE


def layout_of(options: dict[str, Any]) -> Layout:
    """The layout the options name (a preset, or a profile's custom sizes)."""
    try:
        return resolve(options.get("layout", ""), options.get("custom_layout"))
    except (KeyError, TypeError, ValueError):
        raise InvalidParams.field("layout", "unknown_layout") from None


def _render(layout: Layout, lots: Sequence[PottingLot], options: dict[str, Any], dpi: float) -> Any:
    """The first page of `lots` in `layout` as a PIL image (labels from the start position)."""
    start = int(options.get("start_position", 1))
    labels = [label_for(lot, _locale()) for lot in lots[: layout.per_page - (start - 1)]]
    writer = LabelWriter(
        layout,
        created=max(lot.updated_at for lot in lots),
        start_position=start,
        offset_x=float(options.get("offset_x", 0)),
        offset_y=float(options.get("offset_y", 0)),
        typography=plan(layout, labels),  # one type size per field, as the batch prints
    )
    for index, label in enumerate(labels):
        writer.add(index, label)
    # In memory: a preview writes no file, so a full or failing disk cannot break it.
    pdf = io.BytesIO()
    writer.output(pdf)
    document = pypdfium2.PdfDocument(pdf.getvalue())
    try:
        return document[0].render(scale=dpi / 72).to_pil().convert("RGB")
    finally:
        document.close()


def _png(image: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def label_png(lot: PottingLot, options: dict[str, Any], dpi: int = 203) -> bytes:
    """PNG of one label of `lot` (with the printer offset) at label-printer resolution."""
    layout = layout_of(options)
    single = Layout(
        "preview", layout.name, layout.label_w, layout.label_h, layout.label_w, layout.label_h
    )
    return _png(_render(single, [lot], {**options, "start_position": 1}, dpi))


def sheet_png(lots: Sequence[PottingLot], options: dict[str, Any], width_px: int = 420) -> bytes:
    """PNG of the whole first sheet: every position framed, the ones before the start position
    hatched (they stay blank: a sheet used before), the first printed label framed in green,
    then the batch's first labels (`lots` in print order, each `copies` times)."""
    layout = layout_of(options)
    start = int(options.get("start_position", 1))
    if not 1 <= start <= layout.per_page:
        raise InvalidParams.field("start_position", "field_max", limit=layout.per_page)
    copies = max(1, int(options.get("copies", 1)))
    lots = [lot for lot in lots for _ in range(copies)]
    dpi = width_px / (layout.page_w / 25.4)
    image = _render(layout, lots, options, dpi)
    px = dpi / 25.4  # pixels per mm
    draw = ImageDraw.Draw(image)
    for slot in range(layout.per_page):
        _page, x, y = layout.place(slot)
        box = (
            round(x * px),
            round(y * px),
            round((x + layout.label_w) * px),
            round((y + layout.label_h) * px),
        )
        if slot < start - 1:
            draw.rectangle(box, fill=SKIPPED, outline=HATCH)
            step = max(6, round(3 * px))
            left, top, right, bottom = box
            for offset in range(-(bottom - top), right - left, step):  # diagonal hatching
                a = (left + max(offset, 0), top + max(-offset, 0))
                length = min(right - a[0], bottom - a[1])
                draw.line((a, (a[0] + length, a[1] + length)), fill=HATCH, width=1)
        else:
            draw.rectangle(box, outline=CELL)
    _p, x, y = layout.place(start - 1)
    frame = (
        round(x * px) + 1,
        round(y * px) + 1,
        round((x + layout.label_w) * px) - 1,
        round((y + layout.label_h) * px) - 1,
    )
    draw.rectangle(frame, outline=START, width=max(2, round(0.6 * px)))
    draw.rectangle((0, 0, image.width - 1, image.height - 1), outline=EDGE)
    return _png(image)
