"""`potting_lots_csv` and `potting_lots_xlsx`: the potting-lot table with its filters, as rows.

A header row with the import's column names (DESIGN §5), then one row per lot in table order,
so an exported CSV imports back unchanged. Rows are read in keyset batches of `BATCH`, never
all at once, and each batch is read whole before the next progress write commits the session.

Consistency: `prepare` names the data in one aggregate query (count, sum of ids, newest
`updated_at`), and that version goes into the input hash. Each render (the whole file, or one
part of a split export) runs the same query once it has read its rows and fails with
`rows_changed` when the version moved: parts find their slice by position, so an import
between two parts would otherwise drop or repeat rows at their seams without anyone noticing.
A file is therefore exactly the rows its input hash names. (The check runs after the reads
only: before them it would just fail sooner, and at 1,000,000 rows it costs ~0.2 s a part.)

Big exports split into parts of CHUNK_ROWS rows (XLSX) or CSV_CHUNK_ROWS rows (CSV), merged
by webapp/exports.py; its docstring says why an XLSX part is a whole workbook.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict

from webapp import exports
from webapp.documents.base import Prepared
from webapp.documents.row_exports import CsvFormat, RowExport, XlsxFormat
from webapp.errors import InvalidParams
from webapp.extensions import db
from webapp.messages import N_
from webapp.models import Job, PottingLot, User
from webapp.nursery.filters import FilterError, LotFilter, ordered
from webapp.nursery.importer import COLUMNS

BATCH = 2_000  # rows per query: ~10 ms of CSV, ~80 ms of XLSX between two progress checks

_TYPES: dict[str, Literal["text", "int", "date"]] = {"quantity": "int", "potting_date": "date"}
_WIDTHS = {
    "lot_number": 14,
    "plant_name": 44,
    "pot_size": 9,
    "quantity": 10,
    "potting_date": 13,
    "location": 22,
    "customer": 30,
}
COLUMN_SPECS = tuple(
    exports.Column(name, _TYPES.get(name, "text"), _WIDTHS[name]) for name in COLUMNS
)
_SELECTED = tuple(getattr(PottingLot, name) for name in COLUMNS)
assert COLUMNS[0] == "lot_number"  # the keyset below walks the table order by the first column


class ExportParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    filter: dict[str, Any] = {}


class CsvParams(ExportParams):
    delimiter: Literal[",", ";"] = ","


@dataclass(frozen=True)
class Snapshot:
    """What one aggregate query says about the rows a filter selects."""

    rows: int
    version: str
    newest: datetime | None


def resolve(raw: dict[str, Any]) -> LotFilter:
    """The table filter, or 422 naming the filter key (`filter.week`)."""
    try:
        return LotFilter.from_mapping(raw)
    except FilterError as exc:
        field = "filter" if exc.field == "filter" else f"filter.{exc.field}"
        raise InvalidParams.field(field, exc.msg.code, **exc.msg.params) from None


def snapshot(lot_filter: LotFilter) -> Snapshot:
    """Count, sum of ids and newest change in one query: a changed, added or deleted row moves
    at least one of them (an update sets `updated_at`)."""
    count, id_sum, newest = db.session.execute(
        lot_filter.apply(
            sa.select(
                sa.func.count(PottingLot.id),
                sa.func.coalesce(sa.func.sum(PottingLot.id), 0),
                sa.func.max(PottingLot.updated_at),
            )
        )
    ).one()
    stamp = newest.isoformat() if newest else "-"
    return Snapshot(int(count), f"{count}:{id_sum}:{stamp}", newest)


class PottingLotExport(RowExport):
    """What both formats share: the rows of the filtered table, in its order."""

    back_endpoint = "nursery.potting_lots"
    back_label = N_("Back to the potting lots")
    stem = "potting_lots"
    columns = COLUMN_SPECS
    changed_code = "rows_changed"

    def prepare(self, params: Any, owner: User | None) -> Prepared:
        lot_filter = resolve(params.filter)
        snap = snapshot(lot_filter)
        normalised = {"filter": lot_filter.as_dict(), **self.options(params)}
        # What the pages show, and for the renders: the version they check, the newest change
        # (an XLSX's creation date: identical rows give identical bytes).
        summary = {
            "filter": lot_filter.as_dict(),
            "data_version": snap.version,
            "newest": snap.newest.isoformat() if snap.newest else None,
            **self.options(params),
        }
        return Prepared(
            params=normalised, data_version=snap.version, total=snap.rows, summary=summary
        )

    def filter_of(self, job: Job) -> LotFilter:
        return LotFilter.from_mapping(job.params["filter"])

    def snapshot(self, table_filter: Any) -> Snapshot:
        return snapshot(table_filter)

    def rows(self, table_filter: Any, start: int, stop: int) -> Iterator[Sequence[sa.Row[Any]]]:
        return batches(table_filter, start, stop)


class PottingLotsCsv(CsvFormat, PottingLotExport):
    name = "potting_lots_csv"
    title = N_("Potting lots (CSV)")
    Params = CsvParams


class PottingLotsXlsx(XlsxFormat, PottingLotExport):
    name = "potting_lots_xlsx"
    title = N_("Potting lots (Excel)")
    Params = ExportParams


def batches(lot_filter: LotFilter, start: int, stop: int) -> Iterator[Sequence[sa.Row[Any]]]:
    """Rows [start, stop) of the filtered table in its order, BATCH at a time (keyset)."""
    query = ordered(lot_filter.apply(sa.select(*_SELECTED)))
    after = None
    if start:
        # The row before the slice, by position: only a part of a split export needs it.
        after = db.session.scalar(
            ordered(lot_filter.apply(sa.select(PottingLot.lot_number))).offset(start - 1).limit(1)
        )
        if after is None:
            return
    left = stop - start
    while left > 0:
        page = query if after is None else query.where(PottingLot.lot_number > after)
        rows = db.session.execute(page.limit(min(BATCH, left))).all()
        if not rows:
            return
        yield rows
        left -= len(rows)
        after = rows[-1][0]
