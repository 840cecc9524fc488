"""The label preview image shown before a batch starts."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import pypdfium2

from webapp.errors import InvalidParams
from webapp.models import PottingLot
from webapp.nursery.labels import label_for
from webapp.pdf.labels import LabelWriter
from webapp.pdf.layout import PRESETS, Layout


def label_png(lot: PottingLot, options: dict[str, Any], dpi: int = 203) -> bytes:
    """PNG of one label of `lot` (with the printer offset) at label-printer resolution."""
    layout = PRESETS.get(options.get("layout", ""))
    if layout is None:
        raise InvalidParams.field("layout", "unknown_layout")
    single = Layout(
        "preview", layout.name, layout.label_w, layout.label_h, layout.label_w, layout.label_h
    )
    writer = LabelWriter(
        single,
        created=lot.updated_at,
        offset_x=float(options.get("offset_x", 0)),
        offset_y=float(options.get("offset_y", 0)),
    )
    writer.add(0, label_for(lot))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "label.pdf"
        writer.output(path)
        document = pypdfium2.PdfDocument(str(path))
        try:
            image = document[0].render(scale=dpi / 72).to_pil()
        finally:
            document.close()
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
