"""Import of potting lots from CSV or Excel (.xlsx): read, map columns, check (a dry run), commit.

The steps (DESIGN §5), shared by the browser's import page and `flask potting-lots import`:

1. `read_table(data)` reads the file into a header and rows of cells: XLSX (openpyxl, read-only)
   or CSV (UTF-8, UTF-8 with BOM or Windows-1252; ';', ',' or tab, found by csv.Sniffer).
2. `propose_mapping(header)` finds the file's column for each field by its name, in English,
   Dutch or Spanish ("Lotnummer", "Partij", "Lot number" …); the user may change it.
3. `check(table, mapping, options)` types every row and compares it with the table: the dry run,
   with new / updated / unchanged / error counts and each error's row and field.
4. `commit(plan)` writes every row in one write transaction, or none: re-importing the same file
   leaves everything unchanged.

Dates and numbers are read in the user's locale as well as ISO; see `read_dates` and
`read_whole_numbers` for the rules, which look at the whole column, not one cell.

Between the steps the upload is kept on the server (`save_upload`), so an error never loses the
chosen file: PRESSROOM_DATA/imports/<random token>/, readable by the service's user only, removed
after the commit or after an hour (`MAX_AGE_S`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import shutil
import time
import unicodedata
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from babel.dates import get_date_format
from babel.numbers import get_decimal_symbol
from flask_babel import force_locale, gettext

from webapp.db import write_txn
from webapp.extensions import db
from webapp.messages import N_, Msg
from webapp.models import PottingLot

# -- the fields --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str
    label: str  # N_(): translated where shown
    kind: Literal["text", "whole", "date"] = "text"
    required: bool = True
    limit: int | None = None  # characters, as the column holds
    # Column names recognised (besides `name` and `label` in every language), compared
    # without case, accents, spaces or punctuation.
    names: tuple[str, ...] = ()


FIELDS: tuple[Field, ...] = (
    Field(
        "lot_number",
        N_("Lot number"),
        limit=40,
        names=(
            "lotnummer",
            "partij",
            "lot",
            "lotnr",
            "lotno",
            "partijnummer",
            "partijnr",
            "batch",
            "batchnummer",
            "batchnr",
            "lote",
            "numerodelote",
            "nlote",
        ),
    ),
    Field(
        "plant_name",
        N_("Plant name"),
        limit=200,
        names=(
            "plantnaam",
            "soort",
            "plant",
            "naam",
            "cultivar",
            "ras",
            "gewas",
            "artikel",
            "omschrijving",
            "name",
            "species",
            "variety",
            "planta",
            "nombre",
            "variedad",
        ),
    ),
    Field(
        "pot_size",
        N_("Pot size"),
        limit=20,
        names=(
            "potmaat",
            "maat",
            "pot",
            "potgrootte",
            "size",
            "maceta",
            "tamano",
            "tamanodemaceta",
            "tamanomaceta",
        ),
    ),
    Field(
        "quantity",
        N_("Quantity"),
        kind="whole",
        names=(
            "aantal",
            "hoeveelheid",
            "qty",
            "stuks",
            "aantalstuks",
            "count",
            "amount",
            "pieces",
            "cantidad",
            "unidades",
        ),
    ),
    Field(
        "potting_date",
        N_("Potting date"),
        kind="date",
        names=(
            "potdatum",
            "datum",
            "date",
            "oppotdatum",
            "datumoppotten",
            "plantdatum",
            "potted",
            "fecha",
            "fechadeplantacion",
            "fechadeenmacetado",
        ),
    ),
    Field(
        "location",
        N_("Location"),
        limit=60,
        names=("locatie", "plaats", "kas", "lokatie", "plek", "vak", "place", "ubicacion", "lugar"),
    ),
    Field(
        "customer",
        N_("Customer"),
        required=False,
        limit=120,
        names=("klant", "afnemer", "client", "klantnaam", "cliente", "customername"),
    ),
)
BY_NAME = {f.name: f for f in FIELDS}
COLUMNS = tuple(f.name for f in FIELDS)

MAX_ERRORS = 200  # error messages kept; the counts cover every row
MAX_ROWS = 100_000  # rows in one file (an .xlsx of 2 MB can unpack to many more)
MAX_COLUMNS = 200
PREVIEW_ROWS = 20
HEADER_SEARCH = 5  # the header may be below a title: among the first rows, the one naming most
MAX_AGE_S = 3600  # an upload waits this long for its commit
TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")


# -- errors and results ------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    row: int  # the spreadsheet's row number (the header is row 1); 0: the file as a whole
    msg: Msg
    field: str | None = None  # the field it is about, shown beside it

    @classmethod
    def of(cls, row: int, code: str, field: str | None = None, **params: object) -> RowError:
        return cls(row, Msg(code, dict(params)), field)

    def __str__(self) -> str:
        text = self.msg.english()
        if self.field:
            text = f"{english_label(self.field)}: {text}"
        return f"row {self.row}, {text}" if self.row else text


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


def english_label(name: str) -> str:
    return BY_NAME[name].label if name in BY_NAME else name


# -- 1. reading the file -----------------------------------------------------------------------

Cell = str | int | float | date | datetime | None


@dataclass
class Table:
    header: list[str]
    rows: list[tuple[int, list[Cell]]]  # (spreadsheet row number, cells)
    kind: Literal["csv", "xlsx"]
    delimiter: str | None = None
    encoding: str | None = None

    def column_names(self) -> list[str]:
        """The header's names, a blank one named by its letter (as the spreadsheet shows it)."""
        return [
            h or gettext("Column %(letter)s", letter=_letter(i)) for i, h in enumerate(self.header)
        ]


def _letter(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def read_table(data: bytes) -> Table:
    """The file's header and rows; ImportFailed (row 0) when it is not a table we can read."""
    if not data.strip(b" \t\r\n\xef\xbb\xbf"):
        raise ImportFailed([RowError.of(0, "csv_empty")])
    if data.startswith(b"PK\x03\x04"):
        return _read_xlsx(data)
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportFailed([RowError.of(0, "imp_xls")])
    if b"\x00" in data[:65536]:  # images, PDFs, UTF-16: not a text table
        raise ImportFailed([RowError.of(0, "imp_not_table")])
    return _read_csv(data)


def _decode(data: bytes) -> tuple[str, str]:
    """UTF-8 (with or without BOM), else Windows-1252 (Excel's "CSV" on a Dutch Windows)."""
    try:
        return data.decode("utf-8-sig"), "UTF-8"
    except UnicodeDecodeError as exc:
        utf8_error = exc
    try:
        return data.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:
        raise ImportFailed(
            [RowError.of(0, "imp_undecodable", position=utf8_error.start + 1)]
        ) from None


def _delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:20])
    try:
        found = csv.Sniffer().sniff(sample, delimiters=";,\t").delimiter
    except csv.Error:
        found = ""
    header = text.split("\n", 1)[0]
    if found and header.count(found) > 0:
        return found
    counts = {d: header.count(d) for d in (";", ",", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _read_csv(data: bytes) -> Table:
    text, encoding = _decode(data)
    delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, list[Cell]]] = []
    number = 0
    try:
        for record in reader:
            number += 1
            if not any(c.strip() for c in record):
                continue
            rows.append((number, list(record[:MAX_COLUMNS])))
            if len(rows) > MAX_ROWS:
                raise ImportFailed([RowError.of(0, "imp_too_many_rows", limit=MAX_ROWS)])
    except csv.Error as exc:  # e.g. a field over the csv module's size limit
        raise ImportFailed([RowError.of(number + 1, "csv_unreadable", reason=str(exc))]) from None
    return _table(rows, "csv", delimiter, encoding)


def _read_xlsx(data: bytes) -> Table:
    from openpyxl import load_workbook  # only the import needs it
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    # A zip whose XML is broken raises the XML parser's errors (SyntaxError's subclasses), an
    # odd workbook anything from openpyxl's guts: all of it is a file that cannot be read.
    except (
        zipfile.BadZipFile,
        InvalidFileException,
        KeyError,
        OSError,
        ValueError,
        SyntaxError,
    ) as exc:
        raise ImportFailed(
            [RowError.of(0, "imp_bad_xlsx", reason=str(exc) or type(exc).__name__)]
        ) from None
    try:
        sheet = book.active or book.worksheets[0]
        rows: list[tuple[int, list[Cell]]] = []
        for number, values in enumerate(
            sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS), start=1
        ):
            cells = list(values[:MAX_COLUMNS])
            if not any(_text(c) for c in cells):
                continue
            rows.append((number, cells))
            if len(rows) > MAX_ROWS:
                raise ImportFailed([RowError.of(0, "imp_too_many_rows", limit=MAX_ROWS)])
    except ImportFailed:
        raise
    except Exception as exc:  # (see above: a broken sheet's XML, a style openpyxl cannot read)
        raise ImportFailed(
            [RowError.of(0, "imp_bad_xlsx", reason=str(exc) or type(exc).__name__)]
        ) from None
    finally:
        book.close()
    return _table(rows, "xlsx")


def _table(
    records: list[tuple[int, list[Cell]]],
    kind: Literal["csv", "xlsx"],
    delimiter: str | None = None,
    encoding: str | None = None,
) -> Table:
    """The header is the first row, unless one of the next few names more fields, three at least
    (a title row above the header, as spreadsheets made for people often have)."""
    if not records:
        raise ImportFailed([RowError.of(0, "csv_empty")])

    def named(cells: list[Cell]) -> int:
        return sum(v is not None for v in propose_mapping([_text(c) for c in cells]).values())

    at, best = 0, named(records[0][1])
    for i, (_number, cells) in enumerate(records[1:HEADER_SEARCH], start=1):
        if (count := named(cells)) >= max(best + 1, 3):
            at, best = i, count
    header = [_text(c) for c in records[at][1]]
    while header and not header[-1]:
        header.pop()
    rows = records[at + 1 :]
    if not rows:
        raise ImportFailed([RowError.of(0, "csv_no_rows")])
    return Table(header, rows, kind, delimiter, encoding)


def _text(cell: Cell) -> str:
    """A cell as text: numbers without a spurious '.0', dates in ISO."""
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return str(cell)
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, datetime):
        return (
            cell.date().isoformat() if cell.time() == datetime.min.time() else cell.isoformat(" ")
        )
    if isinstance(cell, date):
        return cell.isoformat()
    return str(cell).strip()


# -- 2. the columns ----------------------------------------------------------------------------

Mapping_ = dict[str, int | None]  # field name -> column index in the file, or None


def _key(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(c for c in decomposed if c.isalnum())


def _names(f: Field, languages: Iterable[str]) -> set[str]:
    names = {_key(f.name), _key(f.label), *(_key(n) for n in f.names)}
    for language in languages:
        with force_locale(language):
            names.add(_key(gettext(f.label)))
    return names


def propose_mapping(header: list[str], languages: Iterable[str] = ("en", "nl", "es")) -> Mapping_:
    """Each field's column by name: an exact name first, then a column that starts with one
    ("Aantal (stuks)"); a column is used once, the leftmost wins."""
    keys = [_key(h) for h in header]
    known = {f.name: _names(f, tuple(languages)) for f in FIELDS}
    mapping: Mapping_ = dict.fromkeys(COLUMNS)
    used: set[int] = set()
    for exact in (True, False):
        for f in FIELDS:
            if mapping[f.name] is not None:
                continue
            for index, key in enumerate(keys):
                if index in used or not key:
                    continue
                hit = (
                    key in known[f.name]
                    if exact
                    else any(len(n) >= 4 and key.startswith(n) for n in known[f.name])
                )
                if hit:
                    mapping[f.name] = index
                    used.add(index)
                    break
    return mapping


def mapping_from(form: Mapping[str, str], table: Table) -> Mapping_:
    """The mapping a form sends: `col_<field>` = a column index or '' (not in the file)."""
    proposed = propose_mapping(table.header)
    mapping: Mapping_ = {}
    for name in COLUMNS:
        raw = form.get(f"col_{name}")
        if raw is None:
            mapping[name] = proposed[name]
        elif raw.isdigit() and int(raw) < len(table.header):
            mapping[name] = int(raw)
        else:
            mapping[name] = None
    return mapping


# -- 3. typing the cells -----------------------------------------------------------------------

DateOrder = Literal["dmy", "mdy"]
DecimalMark = Literal[",", "."]


@dataclass(frozen=True)
class Options:
    """How to read the cells: the user's locale, and their choice where the file is ambiguous."""

    locale: str = "en"
    dates: Literal["auto", "dmy", "mdy"] = "auto"
    numbers: Literal["auto", ",", "."] = "auto"  # the decimal mark

    @classmethod
    def from_form(cls, form: Mapping[str, str], locale: str) -> Options:
        dates = form.get("dates", "auto")
        numbers = form.get("numbers", "auto")
        return cls(
            locale,
            dates if dates in ("dmy", "mdy") else "auto",  # type: ignore[arg-type]
            numbers if numbers in (",", ".") else "auto",  # type: ignore[arg-type]
        )

    def locale_date_order(self) -> DateOrder:
        pattern = get_date_format("short", locale=self.locale).pattern
        return "mdy" if pattern.find("M") < pattern.find("d") else "dmy"

    def locale_decimal(self) -> DecimalMark:
        return "," if get_decimal_symbol(self.locale) == "," else "."


ISO_DATE = re.compile(
    r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
LOCAL_DATE = re.compile(
    r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?$"
)


def read_dates(cells: list[Cell], options: Options) -> tuple[list[date | None], DateOrder]:
    """Dates of a column; None where a cell is not a date.

    The rule: a spreadsheet's own date cell, or ISO (2026-11-23, also with / or .), is read as
    such. Day and month in any other order (23-11-2026, 23/11/2026, 23.11.26) are read in one
    order for the whole column: the one the user chose; else the one the column shows (a first
    number over 12 can only be a day, a second one over 12 only in month-first order); else, when
    every cell could be both (01-02-2026) or the column shows both, the user's locale (day first
    in Dutch and Spanish, month first in English). A two-digit year is 20xx.
    """
    texts = [_text(c) if not isinstance(c, date) else "" for c in cells]
    order: DateOrder
    if options.dates != "auto":
        order = options.dates
    else:
        firsts = seconds = False
        for text in texts:
            if m := LOCAL_DATE.match(text):
                firsts |= int(m.group(1)) > 12
                seconds |= int(m.group(2)) > 12
        order = ("dmy" if firsts else "mdy") if firsts != seconds else options.locale_date_order()
    out: list[date | None] = []
    for cell, text in zip(cells, texts, strict=True):
        if isinstance(cell, datetime):
            out.append(cell.date())
        elif isinstance(cell, date):
            out.append(cell)
        else:
            out.append(_date(text, order))
    return out, order


def _date(text: str, order: DateOrder) -> date | None:
    try:
        if m := ISO_DATE.match(text):
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if m := LOCAL_DATE.match(text):
            a, b, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
            day, month = (a, b) if order == "dmy" else (b, a)
            return date(year + 2000 if len(m.group(3)) == 2 else year, month, day)
    except ValueError:  # 31-02-2026
        return None
    return None


NUMBER = re.compile(r"^\+?\d[\d.,]*$")
SPACES = re.compile(r"[\s\u00a0\u202f'’]")  # 1 200, 1'200: grouping


def read_whole_numbers(
    cells: list[Cell], options: Options
) -> tuple[list[int | None], DecimalMark | None]:
    """Whole numbers (≥ 0) of a column; None where a cell is not one.

    The rule: digits alone (1200) are read as they are, and so are a spreadsheet's number cells.
    A '.' or ',' means the same in the whole column, decided in this order:
      1. the user's choice of decimal mark, if they made one;
      2. what the column shows: in a cell with both marks (1.200,50) the last one is the decimal
         mark; a mark that appears twice in a cell (1.200.000) groups thousands; a mark followed
         by other than three digits (12,5) is the decimal mark;
      3. when the column shows nothing either way (every mark is followed by three digits, as in
         1.200 or 1,200), the mark groups thousands: a quantity is a whole number, so 1.200 is
         1200 in every locale, and so is 1,200;
      4. when the column contradicts itself (12,5 and 2.5), the user's locale: ',' is the
         decimal mark in Dutch and Spanish, '.' in English.
    A decimal part must be zero (1.200,00 is 1200); spaces and apostrophes group thousands too.
    """
    texts = ["" if isinstance(c, int | float) else SPACES.sub("", _text(c)) for c in cells]
    decimal: DecimalMark | None
    if options.numbers != "auto":
        decimal = options.numbers
    else:
        decimal_votes: set[str] = set()
        group_votes: set[str] = set()
        for text in texts:
            if not NUMBER.match(text):
                continue
            marks = [c for c in text if c in ".,"]
            if not marks:
                continue
            if len(set(marks)) == 2:
                decimal_votes.add(marks[-1])
            elif len(marks) > 1:
                group_votes.add(marks[0])
            elif len(text) - text.index(marks[0]) - 1 != 3:
                decimal_votes.add(marks[0])
        votes = decimal_votes | {"." if g == "," else "," for g in group_votes}
        if len(votes) == 1:
            decimal = "," if "," in votes else "."
        elif votes:  # both marks show as decimal marks: the column contradicts itself
            decimal = options.locale_decimal()
        else:  # nothing either way: every mark groups thousands
            decimal = None
    out: list[int | None] = []
    for cell, text in zip(cells, texts, strict=True):
        if isinstance(cell, bool):
            out.append(None)
        elif isinstance(cell, int):
            out.append(cell if cell >= 0 else None)
        elif isinstance(cell, float):
            out.append(int(cell) if cell.is_integer() and cell >= 0 else None)
        else:
            out.append(_whole(text, decimal))
    return out, decimal


def _whole(text: str, decimal: DecimalMark | None) -> int | None:
    if not NUMBER.match(text):
        return None
    text = text.lstrip("+")
    whole, fraction = text, ""
    if decimal and decimal in text:
        whole, _, fraction = text.rpartition(decimal)
        if not whole or not fraction.isdigit():
            return None
    groups = re.split(r"[.,]", whole)
    if len(groups) > 1 and not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
        return None  # 1.20.0, 12,34
    if fraction.strip("0"):
        return None  # 12,5 plants
    return int("".join(groups))


# -- 4. the dry run ----------------------------------------------------------------------------

Status = Literal["new", "updated", "unchanged", "error"]


@dataclass
class PlannedRow:
    row: int
    values: dict[str, object]  # typed, for the fields the mapping gives
    cells: dict[str, str]  # the file's text, per field
    errors: dict[str, Msg] = field(default_factory=dict)  # per field
    status: Status = "new"
    changed: tuple[str, ...] = ()


@dataclass
class Plan:
    table: Table
    mapping: Mapping_
    options: Options
    date_order: DateOrder
    decimal: DecimalMark | None  # None: the column has no decimal marks, only thousands
    rows: list[PlannedRow]
    problems: list[RowError]  # about the columns: shown beside the mapping's fields

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("new", "updated", "unchanged", "error"), 0)
        for row in self.rows:
            counts[row.status] += 1
        return counts

    @property
    def ok(self) -> bool:
        return not self.problems and not any(r.errors for r in self.rows)

    def errors(self, limit: int = MAX_ERRORS) -> list[RowError]:
        """The column problems, then each bad cell: row number, field, message."""
        found = list(self.problems)
        for row in self.rows:
            for name, msg in row.errors.items():
                if len(found) >= limit:
                    return found
                found.append(RowError(row.row, msg, name))
        return found

    def error_count(self) -> int:
        return len(self.problems) + sum(len(r.errors) for r in self.rows)


def check(table: Table, mapping: Mapping_, options: Options) -> Plan:
    """Type every row with `mapping`, then compare with the lots in the database: the dry run."""
    problems: list[RowError] = []
    seen_columns: dict[int, str] = {}
    for f in FIELDS:
        index = mapping.get(f.name)
        if index is None:
            if f.required:
                problems.append(RowError.of(1, "imp_column_missing", field=f.name))
        elif index in seen_columns:
            problems.append(RowError.of(1, "imp_column_twice", field=f.name))
        else:
            seen_columns[index] = f.name

    def column(index: int | None) -> list[Cell]:
        if index is None:
            return [None] * len(table.rows)
        return [cells[index] if index < len(cells) else None for _, cells in table.rows]

    typed: dict[str, list[object]] = {}
    date_order: DateOrder = options.locale_date_order()
    decimal: DecimalMark | None = None
    for f in FIELDS:
        cells = column(mapping.get(f.name))
        if f.kind == "date":
            dates, date_order = read_dates(cells, options)
            typed[f.name] = list(dates)
        elif f.kind == "whole":
            numbers, decimal = read_whole_numbers(cells, options)
            typed[f.name] = list(numbers)
    rows: list[PlannedRow] = []
    first_row: dict[str, int] = {}
    for i, (number, _cells) in enumerate(table.rows):
        planned = PlannedRow(number, {}, {})
        for f in FIELDS:
            index = mapping.get(f.name)
            if index is None:
                if not f.required:
                    continue
                planned.cells[f.name] = ""
                continue
            raw = table.rows[i][1][index] if index < len(table.rows[i][1]) else None
            text = _text(raw)
            planned.cells[f.name] = text
            if not text:
                if f.required:
                    planned.errors[f.name] = Msg("imp_empty")
                else:
                    planned.values[f.name] = None
                continue
            if f.kind == "text":
                if f.limit and len(text) > f.limit:
                    planned.errors[f.name] = Msg("imp_too_long", {"n": f.limit})
                else:
                    planned.values[f.name] = text
                continue
            value = typed[f.name][i]
            if value is None:
                planned.errors[f.name] = (
                    Msg("imp_not_whole", {"value": text})
                    if f.kind == "whole"
                    else Msg("imp_not_date", {"value": text, "example": _example_date(date_order)})
                )
            else:
                planned.values[f.name] = value
        lot = planned.values.get("lot_number")
        if isinstance(lot, str):
            if lot in first_row:
                planned.errors.setdefault(
                    "lot_number", Msg("imp_duplicate", {"value": lot, "row": first_row[lot]})
                )
            first_row.setdefault(lot, number)
        rows.append(planned)
    plan = Plan(table, mapping, options, date_order, decimal, rows, problems)
    _compare(plan)
    return plan


def _example_date(order: DateOrder) -> str:
    return "23-11-2026" if order == "dmy" else "11/23/2026"


def _existing(session: Any, numbers: list[str]) -> dict[str, PottingLot]:
    found: dict[str, PottingLot] = {}
    for i in range(0, len(numbers), 5000):
        found.update(
            (lot.lot_number, lot)
            for lot in session.scalars(
                sa.select(PottingLot).where(PottingLot.lot_number.in_(numbers[i : i + 5000]))
            )
        )
    return found


def _compare(plan: Plan, session: Any = None) -> dict[str, PottingLot]:
    numbers = [str(r.values["lot_number"]) for r in plan.rows if "lot_number" in r.values]
    existing = _existing(session or db.session, numbers)
    for row in plan.rows:
        lot = existing.get(str(row.values.get("lot_number")))
        if row.errors:
            row.status = "error"
        elif lot is None:
            row.status, row.changed = "new", ()
        else:
            row.changed = tuple(k for k, v in row.values.items() if getattr(lot, k) != v)
            row.status = "updated" if row.changed else "unchanged"
    return existing


def commit(plan: Plan) -> ImportResult:
    """Write every row of a plan without errors in one write transaction; ImportFailed if any.
    The rows are compared again inside the transaction: what another import changed meanwhile
    counts as it is now, and an unchanged row is not written at all (idempotent)."""
    if not plan.ok:
        raise ImportFailed(plan.errors())
    result = ImportResult(total=len(plan.rows))
    with write_txn() as session:
        existing = _compare(plan, session)
        for row in plan.rows:
            lot = existing.get(str(row.values["lot_number"]))
            if lot is None:
                values = {f.name: None for f in FIELDS if not f.required} | row.values
                session.add(PottingLot(**values))
                result.created += 1
            elif row.changed:
                for key in row.changed:
                    setattr(lot, key, row.values[key])
                result.updated += 1
            else:
                result.unchanged += 1
    return result


def plan_file(
    data: bytes, options: Options | None = None, form: Mapping[str, str] | None = None
) -> Plan:
    table = read_table(data)
    return check(table, mapping_from(form or {}, table), options or Options())


def import_file(data: bytes, options: Options | None = None) -> ImportResult:
    """Read, map by the column names, check and commit: the CLI's import, all rows or none."""
    return commit(plan_file(data, options))


import_csv = import_file  # the name the CLI and the export round-trip test know


# -- 5. the template ---------------------------------------------------------------------------


def template_rows(locale: str) -> tuple[list[str], list[object]]:
    """The column names in the user's language and one example row (date and quantity typed)."""
    with force_locale(locale):
        header = [gettext(f.label) for f in FIELDS]
    example: list[object] = [
        "P2648-001",
        "Hydrangea macrophylla 'Bodensee'",
        "P9",
        1200,
        date(2026, 11, 23),
        "Kas 1 – tafel 04",
        "Tuincentrum De Oosteinde",
    ]
    return header, example


def template_csv(locale: str) -> bytes:
    """UTF-8 with BOM (Excel opens it right); ';' where the locale's decimal mark is ','."""
    header, example = template_rows(locale)
    options = Options(locale)
    delimiter = ";" if options.locale_decimal() == "," else ","
    group = "." if options.locale_decimal() == "," else ","
    cells = [
        v.strftime("%d-%m-%Y" if options.locale_date_order() == "dmy" else "%Y-%m-%d")
        if isinstance(v, date)
        else f"{v:,}".replace(",", group)
        if isinstance(v, int)
        else str(v)
        for v in example
    ]
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerow(cells)
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def template_xlsx(locale: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    header, example = template_rows(locale)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    with force_locale(locale):
        sheet.title = gettext("Potting lots")[:31]
    sheet.append(header)
    sheet.append(example)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.cell(2, 4).number_format = "#,##0"
    sheet.cell(2, 5).number_format = (
        "DD-MM-YYYY" if Options(locale).locale_date_order() == "dmy" else "YYYY-MM-DD"
    )
    for i, width in enumerate((14, 34, 10, 10, 14, 20, 28), start=1):
        sheet.column_dimensions[_letter(i - 1)].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# -- uploads kept between the steps ------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    token: str
    owner_id: int
    filename: str
    size: int
    created: float

    def read(self, data_dir: str | Path) -> bytes:
        return (_root(data_dir) / self.token / "data").read_bytes()


def _root(data_dir: str | Path) -> Path:
    root = Path(data_dir) / "imports"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def save_upload(data_dir: str | Path, data: bytes, filename: str, owner_id: int) -> Upload:
    """Keep an upload for its next steps, under a random token, readable by the service only."""
    root = _root(data_dir)
    sweep(data_dir)
    token = secrets.token_urlsafe(24)
    folder = root / token
    folder.mkdir(mode=0o700)
    upload = Upload(token, owner_id, Path(filename).name[:200], len(data), time.time())
    _write_private(folder / "data", data)
    _write_private(folder / "meta.json", json.dumps(asdict(upload)).encode())
    return upload


def load_upload(data_dir: str | Path, token: str, owner_id: int) -> Upload | None:
    """The upload of `token` if it is this user's and not older than MAX_AGE_S."""
    if not TOKEN.match(token):
        return None
    folder = _root(data_dir) / token
    try:
        upload = Upload(**json.loads((folder / "meta.json").read_bytes()))
    except (OSError, ValueError, TypeError):
        return None
    if upload.owner_id != owner_id:
        return None
    if time.time() - upload.created > MAX_AGE_S:
        discard(data_dir, token)
        return None
    return upload


def discard(data_dir: str | Path, token: str) -> None:
    if TOKEN.match(token):
        shutil.rmtree(_root(data_dir) / token, ignore_errors=True)


def sweep(data_dir: str | Path, now: float | None = None) -> int:
    """Remove uploads older than MAX_AGE_S (run on every upload); how many were removed."""
    now = time.time() if now is None else now
    removed = 0
    for folder in _root(data_dir).iterdir():
        try:
            age = now - folder.stat().st_mtime
        except OSError:
            continue
        if age > MAX_AGE_S:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed
