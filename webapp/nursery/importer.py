"""CSV import of potting lots: upsert by lot_number, every row checked first, all or nothing."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date

import sqlalchemy as sa

from webapp.db import write_txn
from webapp.messages import Msg
from webapp.models import PottingLot

COLUMNS = (
    "lot_number",
    "plant_name",
    "pot_size",
    "quantity",
    "potting_date",
    "location",
    "customer",
)
REQUIRED = COLUMNS[:-1]
LIMITS = {"lot_number": 40, "plant_name": 200, "pot_size": 20, "location": 60, "customer": 120}
MAX_ERRORS = 50


@dataclass(frozen=True)
class RowError:
    line: int  # 0: the file as a whole
    msg: Msg

    @classmethod
    def of(cls, line: int, code: str, **params: object) -> RowError:
        return cls(line, Msg(code, dict(params)))

    def __str__(self) -> str:
        text = self.msg.english()
        return f"line {self.line}: {text}" if self.line else text


class ImportFailed(Exception):
    def __init__(self, errors: list[RowError]) -> None:
        super().__init__("; ".join(map(str, errors)))
        self.errors = errors


@dataclass
class ImportResult:
    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFailed([RowError.of(0, "csv_not_utf8")]) from None


def _dialect(text: str) -> str:
    header = text.split("\n", 1)[0]
    return ";" if header.count(";") > header.count(",") else ","


def parse(data: bytes) -> list[tuple[int, dict[str, object]]]:
    """Rows as (line number, typed values); raises ImportFailed listing every bad row."""
    text = _decode(data)
    if not text.strip():
        raise ImportFailed([RowError.of(0, "csv_empty")])
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_dialect(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ImportFailed(
            [RowError.of(1, "csv_missing_columns", missing=missing, columns=list(COLUMNS))]
        )
    rows: list[tuple[int, dict[str, object]]] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for raw in _records(reader, errors):
        line = reader.line_num
        if not any((v or "").strip() for k, v in raw.items() if k):
            continue
        values, problems = _row(raw)
        lot = str(values.get("lot_number", ""))
        if lot and lot in seen:
            problems.append(Msg("csv_duplicate", {"value": lot, "line": seen[lot]}))
        seen.setdefault(lot, line)
        errors.extend(RowError(line, p) for p in problems)
        rows.append((line, values))
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise ImportFailed(errors)
    if not rows:
        raise ImportFailed([RowError.of(0, "csv_no_rows")])
    return rows


def _records(reader: csv.DictReader, errors: list[RowError]) -> Iterator[dict[str, str | None]]:
    """The reader's records; a line the csv module cannot read ends the file as an error."""
    try:
        yield from reader
    except csv.Error as exc:  # e.g. a field over the csv module's size limit
        # DictReader.line_num is only updated after a good row; its inner reader's is current.
        errors.append(RowError.of(reader.reader.line_num, "csv_unreadable", reason=str(exc)))


def _row(raw: dict[str, str | None]) -> tuple[dict[str, object], list[Msg]]:
    values: dict[str, object] = {}
    problems: list[Msg] = []
    for column in COLUMNS:
        value = (raw.get(column) or "").strip()
        if column in REQUIRED and not value:
            problems.append(Msg("csv_cell_empty", {"column": column}))
            continue
        if column in LIMITS and len(value) > LIMITS[column]:
            problems.append(Msg("csv_cell_too_long", {"column": column, "n": LIMITS[column]}))
            continue
        values[column] = value
    if "quantity" in values:
        try:
            values["quantity"] = int(str(values["quantity"]))
            if values["quantity"] < 0:  # type: ignore[operator]
                raise ValueError
        except ValueError:
            problems.append(Msg("csv_bad_quantity", {"value": repr(raw.get("quantity"))}))
    if "potting_date" in values:
        try:
            values["potting_date"] = date.fromisoformat(str(values["potting_date"]))
        except ValueError:
            problems.append(Msg("csv_bad_date", {"value": repr(raw.get("potting_date"))}))
    values["customer"] = values.get("customer") or None
    return values, problems


def import_csv(data: bytes) -> ImportResult:
    """Check every row, then upsert them all in one transaction."""
    rows = parse(data)
    result = ImportResult(total=len(rows))
    numbers = [str(v["lot_number"]) for _, v in rows]
    with write_txn() as session:
        existing: dict[str, PottingLot] = {}
        for i in range(0, len(numbers), 5000):
            existing.update(
                (lot.lot_number, lot)
                for lot in session.scalars(
                    sa.select(PottingLot).where(PottingLot.lot_number.in_(numbers[i : i + 5000]))
                )
            )
        for _, values in rows:
            lot = existing.get(str(values["lot_number"]))
            if lot is None:
                session.add(PottingLot(**values))
                result.created += 1
            elif any(getattr(lot, k) != v for k, v in values.items()):
                for key, value in values.items():
                    setattr(lot, key, value)
                result.updated += 1
            else:
                result.unchanged += 1
    return result
