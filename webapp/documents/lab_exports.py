"""`protocols_csv`, `protocols_xlsx` and `reports_csv`: the lab's protocols and reports as rows.

A header row, then one row per protocol (with its veterinarian and its report's state) or per
report (with its protocol's number and day), in id order. Rows are read in keyset batches of
`BATCH` by id, never all at once, as the potting-lot exports read theirs
(webapp/documents/potting_lot_exports.py, whose docstring explains the consistency check):
`prepare` names the data in one aggregate query (count, sum of ids, the newest `updated_at` of
the protocols and of the reports), and each render (the whole file or one part) runs it again
once it has read its rows and fails with `lab_rows_changed` when it moved. A veterinarian has
no `updated_at`: renaming one changes no version, so an export made before the rename is
handed out again until a protocol or report changes.

Big exports split into parts of CHUNK_ROWS rows (XLSX) or CSV_CHUNK_ROWS rows (CSV), merged
by webapp/exports.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, Literal, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from webapp import exports
from webapp.documents.base import FieldProblem, Prepared
from webapp.documents.row_exports import CsvFormat, RowExport, XlsxFormat
from webapp.errors import InvalidParams
from webapp.extensions import db
from webapp.messages import N_
from webapp.models import (
    AnalysisType,
    Job,
    Protocol,
    ProtocolStatus,
    Report,
    ReportStatus,
    User,
    Veterinarian,
)

_S = TypeVar("_S", bound=sa.Select)  # a query keeps its columns' types through the filter

BATCH = 2_000  # rows per query, as the potting-lot exports
FILTER_KEYS = ("received_from", "received_to", "status", "analysis_type")
ANALYSIS_TYPES = tuple(t.value for t in AnalysisType)


# -- the filter -----------------------------------------------------------------------------------


class LabFilter(BaseModel):
    """The filter both tables share (also the protocols page's GET parameters); `status` is a
    state of the rows' own table: a protocol's, or a report's."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    statuses: ClassVar[tuple[str, ...]]
    status_column: ClassVar[sa.ColumnElement[str]]

    received_from: date | None = None
    received_to: date | None = None
    status: str = ""
    analysis_type: str = ""

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # Our own message: pydantic's "Unknown field." does not say which keys there are.
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in set(data) - set(FILTER_KEYS))
            if unknown:
                raise FieldProblem(
                    "filter_unknown",
                    field=f"filter.{unknown[0]}",
                    key=unknown[0],
                    keys=list(FILTER_KEYS),
                )
        return data

    @field_validator("received_from", "received_to", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> date | None:
        if value is None or value == "":
            return None
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise FieldProblem("field_date")

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> str:
        return _choice(value, cls.statuses)

    @field_validator("analysis_type", mode="before")
    @classmethod
    def _analysis_type(cls, value: Any) -> str:
        return _choice(value, ANALYSIS_TYPES)

    @model_validator(mode="after")
    def _from_before_to(self) -> LabFilter:
        if self.received_from and self.received_to and self.received_from > self.received_to:
            raise FieldProblem("dates_reversed", field="filter.received_to")
        return self

    def as_dict(self) -> dict[str, str]:
        """The keys that filter, ISO dates as text (the job's params and the page's URL)."""
        values = {key: getattr(self, key) for key in FILTER_KEYS}
        return {k: v.isoformat() if isinstance(v, date) else v for k, v in values.items() if v}

    def apply(self, query: _S) -> _S:
        if self.received_from:
            query = query.where(Protocol.received_on >= self.received_from)
        if self.received_to:
            query = query.where(Protocol.received_on <= self.received_to)
        if self.status:
            query = query.where(self.status_column == self.status)
        if self.analysis_type:
            query = query.where(Protocol.analysis_type == self.analysis_type)
        return query


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    """'' (any) or one of `choices`; our own message names them (pydantic's is English)."""
    value = "" if value is None else value
    if isinstance(value, str) and value.strip() in ("", *choices):
        return value.strip()
    raise FieldProblem("field_choice", choices=list(choices))


class ProtocolFilter(LabFilter):
    statuses = tuple(s.value for s in ProtocolStatus)
    status_column = Protocol.__table__.c.status  # a column: an ORM attribute is a descriptor


class ReportFilter(LabFilter):
    statuses = tuple(s.value for s in ReportStatus)
    status_column = Report.__table__.c.status


class ProtocolsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    filter: ProtocolFilter = Field(default_factory=ProtocolFilter)


class ProtocolsCsvParams(ProtocolsParams):
    delimiter: Literal[",", ";"] = ","


class ReportsCsvParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    filter: ReportFilter = Field(default_factory=ReportFilter)
    delimiter: Literal[",", ";"] = ","


# -- the kinds ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What one aggregate query says about the rows a filter selects."""

    rows: int
    version: str
    newest: datetime | None


class LabExport(RowExport):
    """What the three kinds share: prepare, the filter, the rows in id order."""

    changed_code = "lab_rows_changed"
    back_endpoint = "lab.protocols"
    back_label = N_("Back to the protocols")
    Filter: ClassVar[type[LabFilter]]
    #: What is read for the columns: the key first, then a value a column.
    selected: ClassVar[tuple[Any, ...]]
    #: The rows' own table's id: their order and the keyset.
    key: ClassVar[sa.ColumnElement[int]]  # a table's column: an ORM attribute is a descriptor
    #: The two `updated_at` a row depends on (its own table's and the joined one's).
    stamps: ClassVar[tuple[Any, Any]]
    #: What an empty result is refused with (a code of webapp/messages.py).
    nothing: ClassVar[str]

    def joined(self, *columns: Any) -> sa.Select:
        """`columns` of the rows' tables, joined (one row per id of `key`)."""
        raise NotImplementedError

    def cells(self, rows: Sequence[sa.Row]) -> Iterable[Sequence[Any]]:
        """The file's cells of a batch of `selected` rows (the key, first, is not exported)."""
        return (row[1:] for row in rows)

    def snapshot(self, lab_filter: LabFilter) -> Snapshot:
        """Count, sum of ids and newest changes in one query: an edited, added or deleted row
        moves at least one of them (an update sets `updated_at`)."""
        count, id_sum, own, other = db.session.execute(
            lab_filter.apply(
                self.joined(
                    sa.func.count(self.key),
                    sa.func.coalesce(sa.func.sum(self.key), 0),
                    sa.func.max(self.stamps[0]),
                    sa.func.max(self.stamps[1]),
                )
            )
        ).one()
        changed = [s for s in (own, other) if s is not None]
        stamps = [s.isoformat() if s else "-" for s in (own, other)]
        version = ":".join([str(count), str(id_sum), *stamps])
        return Snapshot(int(count), version, max(changed) if changed else None)

    def prepare(self, params: Any, owner: User | None) -> Prepared:
        lab_filter: LabFilter = params.filter
        snap = self.snapshot(lab_filter)
        if not snap.rows:
            raise InvalidParams.field("filter", self.nothing)
        normalised = {"filter": lab_filter.as_dict(), **self.options(params)}
        summary = {
            **normalised,
            "data_version": snap.version,
            "newest": snap.newest.isoformat() if snap.newest else None,
        }
        return Prepared(
            params=normalised, data_version=snap.version, total=snap.rows, summary=summary
        )

    def filter_of(self, job: Job) -> LabFilter:
        return self.Filter.model_validate(job.params["filter"])

    def rows(self, table_filter: Any, start: int, stop: int) -> Iterator[Sequence[sa.Row]]:
        return self.batches(table_filter, start, stop)

    def batches(self, lab_filter: LabFilter, start: int, stop: int) -> Iterator[Sequence[sa.Row]]:
        """Rows [start, stop) in id order, BATCH at a time (keyset on the id)."""
        query = lab_filter.apply(self.joined(*self.selected)).order_by(self.key)
        after = None
        if start:
            # The id before the slice, by position: only a part of a split export needs it.
            after = db.session.scalar(
                lab_filter.apply(self.joined(self.key))
                .order_by(self.key)
                .offset(start - 1)
                .limit(1)
            )
            if after is None:
                return
        left = stop - start
        while left > 0:
            page = query if after is None else query.where(self.key > after)
            rows = db.session.execute(page.limit(min(BATCH, left))).all()
            if not rows:
                return
            yield rows
            left -= len(rows)
            after = rows[-1][0]


class ProtocolExport(LabExport):
    """One row per protocol, with its veterinarian and its report's state (none: blank)."""

    Filter = ProtocolFilter
    key = Protocol.__table__.c.id
    nothing = "no_protocols_match"
    stem = "protocols"
    stamps = (Protocol.updated_at, Report.updated_at)
    columns = (
        exports.Column("number", width=13),
        exports.Column("received_on", "date", 12),
        exports.Column("status", width=11),
        exports.Column("analysis_type", width=15),
        exports.Column("animal_id", width=26),
        exports.Column("species", width=16),
        exports.Column("veterinarian", width=30),
        exports.Column("clinic", width=40),
        exports.Column("email", width=34),
        exports.Column("report_status", width=13),
    )
    selected = (
        Protocol.id,
        Protocol.number,
        Protocol.received_on,
        Protocol.status,
        Protocol.analysis_type,
        Protocol.animal_id,
        Protocol.species,
        Veterinarian.name,
        Veterinarian.clinic,
        Veterinarian.email,
        Report.status,
    )

    def joined(self, *columns: Any) -> sa.Select:
        return (
            sa.select(*columns)
            .select_from(Protocol)
            .join(Veterinarian, Veterinarian.id == Protocol.veterinarian_id)
            .outerjoin(Report, Report.protocol_id == Protocol.id)  # unique: one row a protocol
        )


class ReportExport(LabExport):
    """One row per report, with its protocol's number and day and its number of cassettes."""

    Filter = ReportFilter
    key = Report.__table__.c.id
    nothing = "no_reports_match"
    stem = "reports"
    stamps = (Report.updated_at, Protocol.updated_at)
    columns = (
        exports.Column("protocol_number", width=13),
        exports.Column("received_on", "date", 12),
        exports.Column("status", width=8),
        exports.Column("version", "int", 8),
        exports.Column("histopathologist", width=28),
        exports.Column("diagnosis", width=60),
        exports.Column("finalised_at", width=21),
        exports.Column("pdf_sha256", width=66),
        exports.Column("cassettes", "int", 10),
    )
    selected = (
        Report.id,
        Protocol.number,
        Protocol.received_on,
        Report.status,
        Report.version,
        Report.histopathologist,
        Report.diagnosis,
        Report.finalised_at,
        Report.pdf_sha256,
        # SQLite's and PostgreSQL's json_array_length both take the JSON column as stored.
        sa.func.coalesce(sa.func.json_array_length(Report.cassettes), 0),
    )

    def joined(self, *columns: Any) -> sa.Select:
        return (
            sa.select(*columns)
            .select_from(Report)
            .join(Protocol, Protocol.id == Report.protocol_id)
        )

    def cells(self, rows: Sequence[sa.Row]) -> Iterable[Sequence[Any]]:
        # finalised_at as the API writes timestamps: ISO 8601, UTC, to the second.
        return ((*row[1:7], _timestamp(row[7]), *row[8:]) for row in rows)


def _timestamp(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


class ProtocolsCsv(CsvFormat, ProtocolExport):
    name = "protocols_csv"
    title = N_("Protocols (CSV)")
    Params = ProtocolsCsvParams


class ReportsCsv(CsvFormat, ReportExport):
    name = "reports_csv"
    title = N_("Reports (CSV)")
    Params = ReportsCsvParams


class ProtocolsXlsx(XlsxFormat, ProtocolExport):
    name = "protocols_xlsx"
    title = N_("Protocols (Excel)")
    Params = ProtocolsParams
