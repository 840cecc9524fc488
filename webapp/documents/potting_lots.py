"""`potting_lot_labels`: one label per potting lot (× copies), on a roll or on sheets."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app

from webapp.documents import DocumentKind, Part, Prepared, register
from webapp.extensions import db
from webapp.jobs.errors import InvalidParams, PermanentError
from webapp.models import Job, PottingLot, User
from webapp.nursery.filters import FilterError, LotFilter, iso_week, ordered
from webapp.pdf.labels import LabelData, LabelWriter
from webapp.pdf.layout import DEFAULT_LAYOUT, PRESETS, part_bounds

PARAM_KEYS = {"lot_ids", "filter", "layout", "start_position", "copies", "offset_x", "offset_y"}
MAX_COPIES = 100
ID_BATCH = 5000  # stays under SQLite's bound-parameter limit


def _int(params: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParams(f"{key!r} must be a whole number from {low} to {high}.", field=key)
    return value


def _mm(params: dict[str, Any], key: str) -> float:
    value = params.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not -10 <= value <= 10:
        raise InvalidParams(f"{key!r} must be a number of millimetres from -10 to 10.", field=key)
    return round(float(value), 1)


def load_lots(ids: list[int]) -> dict[int, PottingLot]:
    found: dict[int, PottingLot] = {}
    for i in range(0, len(ids), ID_BATCH):
        batch = ids[i:i + ID_BATCH]
        found.update((lot.id, lot) for lot in db.session.scalars(
            sa.select(PottingLot).where(PottingLot.id.in_(batch))))
    return found


def label_for(lot: PottingLot) -> LabelData:
    details = f"{lot.pot_size} · {lot.quantity}× · {iso_week(lot.potting_date)}"
    return LabelData(title=lot.lot_number, qr=lot.lot_number, name=lot.plant_name,
                     details=details, lines=tuple(t for t in (lot.location, lot.customer) if t))


class PottingLotLabels(DocumentKind):
    name = "potting_lot_labels"
    title = "Potting-lot labels"

    def prepare(self, params: Any, owner: User | None) -> Prepared:
        if not isinstance(params, dict):
            raise InvalidParams("params must be an object.", field="params")
        unknown = sorted(set(params) - PARAM_KEYS)
        if unknown:
            raise InvalidParams(f"Unknown parameter {unknown[0]!r}.", field=unknown[0])
        if ("lot_ids" in params) == ("filter" in params):
            raise InvalidParams("Give either 'lot_ids' or 'filter'.", field="lot_ids")
        layout_key = params.get("layout", DEFAULT_LAYOUT)
        if layout_key not in PRESETS:
            raise InvalidParams(f"Unknown layout {layout_key!r}; use one of {', '.join(PRESETS)}.",
                                field="layout")
        layout = PRESETS[layout_key]
        start = _int(params, "start_position", 1, 1, layout.per_page)
        copies = _int(params, "copies", 1, 1, MAX_COPIES)
        offset_x, offset_y = _mm(params, "offset_x"), _mm(params, "offset_y")

        lot_filter = None
        if "filter" in params:
            try:
                lot_filter = LotFilter.from_mapping(params["filter"])
            except FilterError as exc:
                raise InvalidParams(exc.message, field=f"filter.{exc.field}") from None
            rows = db.session.execute(ordered(lot_filter.apply(sa.select(PottingLot)))).scalars()
            lots = list(rows)
            if not lots:
                raise InvalidParams("No potting lots match these filters; change or clear them.",
                                    field="filter")
        else:
            ids = params["lot_ids"]
            if (not isinstance(ids, list) or not ids
                    or any(isinstance(i, bool) or not isinstance(i, int) for i in ids)):
                raise InvalidParams("'lot_ids' must be a non-empty list of lot ids (integers).",
                                    field="lot_ids")
            limit = current_app.config["MAX_LABELS"]
            if len(ids) > limit:
                raise InvalidParams(f"This batch has {len(ids):,} labels; the limit is {limit:,}.",
                                    field="lot_ids")
            found = load_lots(sorted(set(ids)))
            missing = sorted(set(ids) - set(found))
            if missing:
                shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
                raise InvalidParams(f"Unknown potting lot ids: {shown}.", field="lot_ids")
            lots = sorted(found.values(), key=lambda lot: lot.lot_number)

        digest = hashlib.sha256()
        for lot in lots:
            digest.update(repr(lot.label_fields()).encode())
        normalised = {"lot_ids": [lot.id for lot in lots], "layout": layout_key,
                      "start_position": start, "copies": copies,
                      "offset_x": offset_x, "offset_y": offset_y}
        summary = {"lots": len(lots), "copies": copies, "layout": layout_key,
                   "filter": lot_filter.as_dict() if lot_filter else None,
                   "first": lots[0].lot_number, "last": lots[-1].lot_number}
        return Prepared(params=normalised, data_version=digest.hexdigest(),
                        total=len(lots) * copies, summary=summary)

    def file_name(self, job: Job) -> str:
        created = job.created_at.replace(tzinfo=UTC).astimezone(ZoneInfo(current_app.config["TZ"]))
        year, week, weekday = created.isocalendar()
        return f"oppotpartijen_{year % 100:02d}W{week:02d}-{weekday}.pdf"

    def plan_parts(self, job: Job, labels_per_part: int) -> list[Part]:
        layout = PRESETS[job.params["layout"]]
        bounds = part_bounds(job.progress_total, layout, job.params["start_position"], labels_per_part)
        return [Part(i, a, b) for i, (a, b) in enumerate(bounds)] if len(bounds) > 1 else []

    def render(self, job: Job, lease: Any, out: Path, part: Part | None) -> None:
        p = job.params
        copies = p["copies"]
        start, stop = (part.start, part.stop) if part else (0, job.progress_total)
        ids = p["lot_ids"][start // copies:(stop - 1) // copies + 1]
        lots = load_lots(ids)
        # The creation date is pinned to the job's data so identical input gives identical bytes.
        newest = max((lot.updated_at for lot in lots.values()), default=datetime(2000, 1, 1))
        writer = LabelWriter(PRESETS[p["layout"]], created=newest, start_position=p["start_position"],
                             offset_x=p["offset_x"], offset_y=p["offset_y"], first_slot=start)
        # Built before the first progress write: its commit expires every loaded row.
        labels = {lot_id: label_for(lot) for lot_id, lot in lots.items()}
        lot_ids = p["lot_ids"]
        lease.progress(0, "Drawing labels", force=True)
        for index in range(start, stop):
            label = labels.get(lot_ids[index // copies])
            if label is None:
                raise PermanentError(f"Potting lot #{lot_ids[index // copies]} was deleted after "
                                     "this job was started; print the labels again.")
            writer.add(index, label)
            lease.progress(index + 1 - start, "Drawing labels")
        lease.progress(stop - start, "Writing the file", force=True)
        writer.output(out)


register(PottingLotLabels())
