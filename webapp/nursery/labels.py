"""What a potting lot's label says (the label kind and the preview draw the same)."""

from __future__ import annotations

from webapp.models import PottingLot
from webapp.nursery.filters import iso_week
from webapp.pdf.labels import LabelData


def label_for(lot: PottingLot) -> LabelData:
    details = f"{lot.pot_size} · {lot.quantity}× · {iso_week(lot.potting_date)}"
    return LabelData(
        title=lot.lot_number,
        qr=lot.lot_number,
        name=lot.plant_name,
        details=details,
        lines=tuple(t for t in (lot.location, lot.customer) if t),
    )
