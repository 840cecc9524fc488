"""`potting_lot_labels`: one label per potting lot (× copies), on a roll or on sheets."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import pikepdf
import sqlalchemy as sa
from flask import current_app, has_request_context
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from webapp.documents.base import DocumentKind, FieldProblem, Part, Prepared, RenderContext
from webapp.errors import InvalidParams, PermanentError, TransientError
from webapp.extensions import db
from webapp.messages import N_
from webapp.models import Job, PottingLot, User
from webapp.nursery.filters import FilterError, LotFilter, ordered
from webapp.nursery.labels import DEFAULT_LOCALE, field_values, label_for
from webapp.pdf import fonts
from webapp.pdf.labels import LabelWriter, Typography, plan_values, qr_size
from webapp.pdf.layout import (
    CUSTOM,
    DEFAULT_LAYOUT,
    PRESETS,
    Layout,
    overflow,
    part_bounds,
    resolve,
)
from webapp.pdf.merge import merge_pdfs
from webapp.pdf.qr import module_fits

MAX_COPIES = 100
MAX_ID = 2**63 - 1  # what a database integer holds; a bigger id is a 422, not an overflow
ID_BATCH = 5000  # stays under SQLite's bound-parameter limit


class CustomLayout(BaseModel):
    """A printer profile's own layout in mm (`layout: "custom"`): a roll, or a sheet's grid."""

    model_config = ConfigDict(extra="forbid", strict=True)
    kind: Literal["roll", "sheet"]
    label_w: float = Field(ge=20, le=300, allow_inf_nan=False)
    label_h: float = Field(ge=10, le=300, allow_inf_nan=False)
    page_w: float = Field(210.0, ge=20, le=500, allow_inf_nan=False)  # sheets only
    page_h: float = Field(297.0, ge=20, le=500, allow_inf_nan=False)
    cols: int = Field(1, ge=1, le=20)
    rows: int = Field(1, ge=1, le=50)
    left: float = Field(0.0, ge=0, le=100, allow_inf_nan=False)
    top: float = Field(0.0, ge=0, le=100, allow_inf_nan=False)
    gap_x: float = Field(0.0, ge=0, le=50, allow_inf_nan=False)
    gap_y: float = Field(0.0, ge=0, le=50, allow_inf_nan=False)

    @model_validator(mode="after")
    def _fits_the_page(self) -> CustomLayout:
        if self.kind == "sheet":
            problem = overflow(resolve(CUSTOM, self.model_dump()))
            if problem:
                side, mm = problem
                wide = side == "width"
                code, field = ("layout_too_wide", "cols") if wide else ("layout_too_tall", "rows")
                raise FieldProblem(code, field=f"custom_layout.{field}", mm=mm)
        return self


class LabelParams(BaseModel):
    """Either `lot_ids` or a table `filter`; layout, start position, copies, printer offset."""

    model_config = ConfigDict(extra="forbid", strict=True)
    lot_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(None, min_length=1)
    filter: dict[str, Any] | None = None
    layout: str = DEFAULT_LAYOUT
    custom_layout: CustomLayout | None = None  # with layout "custom"
    start_position: int = Field(1, ge=1)
    copies: int = Field(1, ge=1, le=MAX_COPIES)
    offset_x: float = Field(0.0, ge=-10, le=10, allow_inf_nan=False)
    offset_y: float = Field(0.0, ge=-10, le=10, allow_inf_nan=False)
    #: Numbers on the labels as the table shows them; default: the reader's language.
    locale: str | None = None

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        if value is not None and value not in current_app.config["LANGUAGES"]:
            raise FieldProblem("field_choice", choices=", ".join(current_app.config["LANGUAGES"]))
        return value

    @field_validator("layout")
    @classmethod
    def _layout(cls, value: str) -> str:
        if value not in PRESETS and value != CUSTOM:  # ours: pydantic's lists them in English
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
        if (self.layout == CUSTOM) != (self.custom_layout is not None):
            raise FieldProblem("unknown_layout", field="layout")
        per_page = resolve(self.layout, self.custom_dict()).per_page
        if self.start_position > per_page:
            raise FieldProblem("field_max", field="start_position", limit=per_page)
        return self

    def custom_dict(self) -> dict[str, Any] | None:
        return self.custom_layout.model_dump() if self.custom_layout else None


VERSION_COLUMNS = (PottingLot.id, PottingLot.lot_number, PottingLot.updated_at)
#: What a label prints, read with the version in one query: the pre-flight checks every text
#: and the batch's type sizes are decided from them before the job starts.
LABEL_COLUMNS = (
    *VERSION_COLUMNS,
    PottingLot.plant_name,
    PottingLot.pot_size,
    PottingLot.quantity,
    PottingLot.potting_date,
    PottingLot.location,
    PottingLot.customer,
)
MAX_NAMED = 10  # lots named in a refusal


def reader_locale() -> str:
    """The language of whoever submits (flask_babel's choice), else English."""
    if has_request_context():
        from flask_babel import get_locale

        locale = get_locale()
        if locale is not None:
            return str(locale.language)
    return DEFAULT_LOCALE


def preflight(
    rows: list[Any],
    values: tuple[set[str], set[str], list[set[str]]],
    layout: Layout,
    field: str,
    locale: str,
) -> None:
    """Refuse, before the job starts, what would not print: characters no installed font has
    (naming the lots and the characters) and a QR code too fine for the printer's dots.
    `values` are the selection's distinct texts (`field_values`): each character is checked
    once; only when one lacks a font are the lots that have it looked up."""
    titles, names, slots = values
    texts = {t for group in (titles, names, *slots) for t in group if not t.isascii()}
    lacking = set(fonts.missing("".join(set("".join(texts)))))
    problems = []
    if lacking:
        for row in rows:
            label = label_for(row, locale)
            text = "".join((label.title, label.name, *label.fields()))
            chars = [c for c in dict.fromkeys(text) if c in lacking]
            if chars:
                named = ", ".join(f"‘{c}’ (U+{ord(c):04X})" for c in chars)
                problems.append(f"{row.lot_number}: {named}")
    if problems:
        shown = "; ".join(problems[:MAX_NAMED])
        if len(problems) > MAX_NAMED:
            shown += f"; … (+{len(problems) - MAX_NAMED})"
        raise InvalidParams.field(field, "no_font_for", problems=shown)
    # The code's size grows with the payload's length: check the longest few.
    longest = sorted(titles, key=len, reverse=True)[:5]  # the code holds the lot number
    for payload in longest:
        fits, module, smallest = module_fits(payload, qr_size(layout), layout.dpi)
        if not fits:
            good = [
                key
                for key, other in PRESETS.items()
                if module_fits(payload, qr_size(other), other.dpi)[0]
            ]
            raise InvalidParams.field(
                "layout",
                "qr_too_small",
                lot=payload,
                module=f"{module:.2f}",
                smallest=f"{smallest:.2f}",
                dpi=layout.dpi,
                layouts=", ".join(good) or "—",
            )


def _versions(ids: list[int]) -> list[Any]:
    rows: list[Any] = []
    for i in range(0, len(ids), ID_BATCH):
        rows.extend(db.session.execute(_versions_statement(), {"ids": ids[i : i + ID_BATCH]}))
    return rows


@functools.cache
def _versions_statement() -> Any:
    """The label columns of some lots, built once (every submit by lot ids runs it)."""
    return sa.select(*LABEL_COLUMNS).where(PottingLot.id.in_(sa.bindparam("ids", expanding=True)))


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
            lots = list(db.session.execute(ordered(lot_filter.apply(sa.select(*LABEL_COLUMNS)))))
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

        locale = p.locale or reader_locale()
        layout = resolve(p.layout, p.custom_dict())
        values = field_values(lots, locale)
        preflight(lots, values, layout, "filter" if p.filter is not None else "lot_ids", locale)
        typography = plan_values(layout, *values)
        digest = hashlib.sha256()
        for row in lots:
            digest.update(f"{row.id}:{row.updated_at.isoformat()};".encode())
        normalised = {
            "lot_ids": [lot.id for lot in lots],
            "layout": p.layout,
            **({"custom_layout": p.custom_dict()} if p.custom_layout else {}),
            "start_position": p.start_position,
            "copies": p.copies,
            "offset_x": round(p.offset_x, 1),
            "offset_y": round(p.offset_y, 1),
            "locale": locale,
        }
        summary = {
            "lots": len(lots),
            "copies": p.copies,
            "layout": p.layout,
            "filter": lot_filter.as_dict() if lot_filter else None,
            "first": lots[0].lot_number,
            "last": lots[-1].lot_number,
            # Decided once for the batch: every chunk draws with the same sizes.
            "typography": typography.as_dict(),
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
        layout = resolve(job.params["layout"], job.params.get("custom_layout"))
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
        locale = p.get("locale") or DEFAULT_LOCALE
        layout = resolve(p["layout"], p.get("custom_layout"))
        planned = (job.summary or {}).get("typography")
        if planned:
            typography = Typography.from_dict(planned)
        else:  # a job from before plans were stored: decided from the whole selection
            every = load_lots(sorted(set(p["lot_ids"])))
            typography = plan_values(layout, *field_values(every.values(), locale))
        # The creation date is pinned to the job's data so identical input gives identical bytes.
        newest = max((lot.updated_at for lot in lots.values()), default=datetime(2000, 1, 1))
        writer = LabelWriter(
            layout,
            created=newest,
            start_position=p["start_position"],
            offset_x=p["offset_x"],
            offset_y=p["offset_y"],
            first_slot=start,
            typography=typography,
        )
        # Built before the first progress write: its commit expires every loaded row.
        labels = {lot_id: label_for(lot, locale) for lot_id, lot in lots.items()}
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
