"""`potting_lot_labels`: one label per potting lot (× copies), on a roll or on sheets."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import pikepdf
import sqlalchemy as sa
from flask import current_app
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from webapp.documents.base import DocumentKind, FieldProblem, Part, Prepared, RenderContext
from webapp.errors import InvalidParams, PermanentError, TransientError
from webapp.extensions import db
from webapp.messages import N_
from webapp.models import Job, PottingLot, User
from webapp.nursery.filters import FilterError, LotFilter, ordered
from webapp.nursery.labels import label_for
from webapp.pdf.labels import LabelWriter
from webapp.pdf.layout import DEFAULT_LAYOUT, PRESETS, part_bounds
from webapp.pdf.merge import merge_pdfs

MAX_COPIES = 100
MAX_ID = 2**63 - 1  # what a database integer holds; a bigger id is a 422, not an overflow
ID_BATCH = 5000  # stays under SQLite's bound-parameter limit


class LabelParams(BaseModel):
    """Either `lot_ids` or a table `filter`; layout, start position, copies, printer offset."""

    model_config = ConfigDict(extra="forbid", strict=True)
    lot_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(None, min_length=1)
    filter: dict[str, Any] | None = None
    layout: str = DEFAULT_LAYOUT
    start_position: int = Field(1, ge=1)
    copies: int = Field(1, ge=1, le=MAX_COPIES)
    offset_x: float = Field(0.0, ge=-10, le=10, allow_inf_nan=False)
    offset_y: float = Field(0.0, ge=-10, le=10, allow_inf_nan=False)

    @field_validator("layout")
    @classmethod
    def _layout(cls, value: str) -> str:
        if value not in PRESETS:  # our own message: pydantic's lists the choices in English
            raise FieldProblem("unknown_layout")
        return value

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                LotFilter.from_mapping(value)
            except FilterError as exc:  # named like the API's filter keys: "filter.week"
                name = "filter" if exc.field == "filter" else f"filter.{exc.field}"
                raise FieldProblem(exc.msg.code, field=name, **exc.msg.params) from None
        return value

    @model_validator(mode="after")
    def _one_source_and_a_start_on_the_page(self) -> LabelParams:
        if (self.lot_ids is None) == (self.filter is None):
            raise FieldProblem("one_of_lots_or_filter", field="lot_ids")
        per_page = PRESETS[self.layout].per_page
        if self.start_position > per_page:
            raise FieldProblem("field_max", field="start_position", limit=per_page)
        return self


VERSION_COLUMNS = (PottingLot.id, PottingLot.lot_number, PottingLot.updated_at)


def _versions(ids: list[int]) -> list[Any]:
    rows: list[Any] = []
    for i in range(0, len(ids), ID_BATCH):
        rows.extend(
            db.session.execute(
                sa.select(*VERSION_COLUMNS).where(PottingLot.id.in_(ids[i : i + ID_BATCH]))
            )
        )
    return rows


def load_lots(ids: list[int]) -> dict[int, PottingLot]:
    found: dict[int, PottingLot] = {}
    for i in range(0, len(ids), ID_BATCH):
        batch = ids[i : i + ID_BATCH]
        found.update(
            (lot.id, lot)
            for lot in db.session.scalars(sa.select(PottingLot).where(PottingLot.id.in_(batch)))
        )
    return found


class PottingLotLabels(DocumentKind):
    name = "potting_lot_labels"
    title = N_("Potting-lot labels")
    unit = "label"
    Params = LabelParams
    limit_key = "MAX_LABELS"
    back_endpoint = "nursery.potting_lots"
    back_label = N_("Back to the potting lots")

    def prepare(self, params: Any, owner: User | None) -> Prepared:
        """The lots in print order. The data version hashes each lot's id and `updated_at`:
        one query over three columns, never the rows themselves (50,000 lots: see benchmarks)."""
        p: LabelParams = params
        lot_filter = None
        if p.filter is not None:
            lot_filter = LotFilter.from_mapping(p.filter)
            lots = list(db.session.execute(ordered(lot_filter.apply(sa.select(*VERSION_COLUMNS)))))
            if not lots:
                raise InvalidParams.field("filter", "no_lots_match")
        else:
            ids = p.lot_ids or []
            limit = current_app.config["MAX_LABELS"]
            if len(ids) > limit:
                raise InvalidParams.field(
                    "lot_ids", "too_many", total=len(ids), unit="label", limit=limit
                )
            found = {row.id: row for row in _versions(sorted(set(ids)))}
            missing = sorted(set(ids) - set(found))
            if missing:
                shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
                raise InvalidParams.field("lot_ids", "unknown_lots", ids=shown)
            lots = sorted(found.values(), key=lambda row: row.lot_number)

        digest = hashlib.sha256()
        for row in lots:
            digest.update(f"{row.id}:{row.updated_at.isoformat()};".encode())
        normalised = {
            "lot_ids": [lot.id for lot in lots],
            "layout": p.layout,
            "start_position": p.start_position,
            "copies": p.copies,
            "offset_x": round(p.offset_x, 1),
            "offset_y": round(p.offset_y, 1),
        }
        summary = {
            "lots": len(lots),
            "copies": p.copies,
            "layout": p.layout,
            "filter": lot_filter.as_dict() if lot_filter else None,
            "first": lots[0].lot_number,
            "last": lots[-1].lot_number,
        }
        return Prepared(
            params=normalised,
            data_version=digest.hexdigest(),
            total=len(lots) * p.copies,
            summary=summary,
        )

    def file_name(self, job: Job) -> str:
        created = job.created_at.replace(tzinfo=UTC).astimezone(ZoneInfo(current_app.config["TZ"]))
        year, week, weekday = created.isocalendar()
        return f"oppotpartijen_{year % 100:02d}W{week:02d}-{weekday}.pdf"

    def split(self, job: Job, config: dict[str, Any]) -> list[Part]:
        """Parts of CHUNK_LABELS labels, each covering whole sheets."""
        layout = PRESETS[job.params["layout"]]
        bounds = part_bounds(
            job.progress_total, layout, job.params["start_position"], config["CHUNK_LABELS"]
        )
        return [Part(i, a, b) for i, (a, b) in enumerate(bounds)] if len(bounds) > 1 else []

    def merge(self, job: Job, ctx: RenderContext, parts: list[Path], out: Path) -> None:
        try:
            merge_pdfs(parts, out)  # linear time: pikepdf's pages.extend is quadratic (6 s at 10k)
        except pikepdf.PdfError as exc:
            raise TransientError("merge_failed", reason=str(exc)) from exc

    def render(self, job: Job, ctx: RenderContext, out: Path, part: Part | None) -> None:
        p = job.params
        copies = p["copies"]
        start, stop = (part.start, part.stop) if part else (0, job.progress_total)
        ids = p["lot_ids"][start // copies : (stop - 1) // copies + 1]
        lots = load_lots(ids)
        # The creation date is pinned to the job's data so identical input gives identical bytes.
        newest = max((lot.updated_at for lot in lots.values()), default=datetime(2000, 1, 1))
        writer = LabelWriter(
            PRESETS[p["layout"]],
            created=newest,
            start_position=p["start_position"],
            offset_x=p["offset_x"],
            offset_y=p["offset_y"],
            first_slot=start,
        )
        # Built before the first progress write: its commit expires every loaded row.
        labels = {lot_id: label_for(lot) for lot_id, lot in lots.items()}
        lot_ids = p["lot_ids"]
        ctx.progress(0, "drawing_labels", force=True)
        for index in range(start, stop):
            label = labels.get(lot_ids[index // copies])
            if label is None:
                raise PermanentError("lot_deleted", id=lot_ids[index // copies])
            writer.add(index, label)
            ctx.progress(index + 1 - start, "drawing_labels")
        ctx.progress(stop - start, "writing_file", force=True)
        writer.output(out)
