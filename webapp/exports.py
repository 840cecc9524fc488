"""Row files for the export kinds: CSV and XLSX written row by row, and the merge of their parts.

Nothing here holds more than one batch of rows. A big export is rendered in parts (row slices,
in order) and merged. Every part is a complete file of its slice, header included; the merge
keeps the first part's header and appends the rows of every part:

- CSV: the parts' bytes one after another, each part after the first without its BOM and
  header line.
- XLSX: each part is a workbook written by xlsxwriter in constant-memory mode at its slice's
  absolute row numbers. In that mode xlsxwriter writes every string inline, so a part's
  `<sheetData>` does not depend on any other part, and since every part uses the same formats
  in the same order (header, then dates) their style numbers agree. The merge takes the first
  part's workbook and streams the rows of every part into its sheet (dropping the other
  parts' header rows), fixing only `<dimension>`. The slow work (xlsxwriter, ~40 µs a row)
  stays in the parts, which run in parallel with progress, heartbeats and cancel checks; the
  merge only inflates and deflates (~4 µs a row). Writing the XLSX in the merge from CSV-like
  parts would put all of it in the one step that has no progress, no heartbeat and no cancel
  check (docs/benchmarks.md, "Exports"). A merged file is byte for byte the file one render
  of all rows writes (tests/unit/test_exports.py).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import socket
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import xlsxwriter
from xlsxwriter.exceptions import FileCreateError

BOM = "\ufeff"
XLSX_MAX_ROWS = 1_048_576 - 1  # data rows a sheet holds under its header
SHEET = "xl/worksheets/sheet1.xml"
_DIMENSION = re.compile(rb'<dimension ref="([A-Z]+)(\d+)(?::([A-Z]+)(\d+))?"/>')
_HEAD_BYTES = 1 << 16  # the XML before <sheetData> (views, panes, columns) is a few hundred bytes
_BLOCK = 1 << 20


@dataclass(frozen=True)
class Column:
    name: str
    type: Literal["text", "int", "date"] = "text"
    width: float = 12  # XLSX column width, in characters


class RowWriter(Protocol):
    """A file written row by row: `close` finishes it, `abort` gives up on it."""

    def write(self, rows: Iterable[Sequence[Any]]) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class CsvRows:
    """A CSV file (or part) written row by row: UTF-8 with a BOM, a header line, then rows."""

    def __init__(self, out: Path, columns: Sequence[Column], *, delimiter: str = ",") -> None:
        self.file = out.open("w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.file, delimiter=delimiter)  # QUOTE_MINIMAL, \r\n lines
        self.file.write(BOM)
        self.writer.writerow([c.name for c in columns])

    def write(self, rows: Iterable[Sequence[Any]]) -> None:
        # As they come: the csv module writes None as "" and a date as str(date), its ISO form.
        self.writer.writerows(rows)

    def close(self) -> None:
        self.file.close()

    def abort(self) -> None:
        self.file.close()  # the caller removes the half-written file


class XlsxRows:
    """One sheet written row by row in xlsxwriter's constant-memory mode.

    `first_row` is the index of the first data row in the whole file (0-based, the header not
    counted), so a part writes at its absolute row numbers, under its own header row.
    """

    def __init__(
        self,
        out: Path,
        columns: Sequence[Column],
        *,
        first_row: int = 0,
        created: datetime | None = None,
        sheet_name: str = "Sheet1",
    ) -> None:
        # Constant-memory mode spools the rows' XML to a temp file (and assembles the sheet in
        # another): in a folder of our own, so an abort leaves nothing behind. Beside `out`, on
        # the disk whose free space the engine checks, named like the engine's temp files
        # (webapp/jobs/artifacts.py), so that the reaper removes a dead worker's at once.
        self.tmpdir = tempfile.mkdtemp(
            prefix=f"{os.getpid()}@{socket.gethostname()}.xlsx-", dir=out.parent
        )
        self.book = xlsxwriter.Workbook(str(out), {"constant_memory": True, "tmpdir": self.tmpdir})
        # Pinned to the data, not "now": identical input gives identical bytes.
        self.book.set_properties({"created": created or datetime(2000, 1, 1)})
        self.sheet = self.book.add_worksheet(sheet_name)
        bold = self.book.add_format({"bold": True})
        self.date_format = self.book.add_format({"num_format": "yyyy-mm-dd"})
        for index, column in enumerate(columns):
            self.sheet.set_column(index, index, column.width)
        self.sheet.freeze_panes(1, 0)
        # Every part writes the header: xlsxwriter numbers formats in the order they are first
        # used, so the parts' date cells carry the same style number as the whole file's.
        for index, column in enumerate(columns):
            self.sheet.write_string(0, index, column.name, bold)
        self.types = [c.type for c in columns]
        self.row = first_row + 1

    def write(self, rows: Iterable[Sequence[Any]]) -> None:
        sheet, date_format, types = self.sheet, self.date_format, self.types
        row = self.row
        for values in rows:
            for col, (kind, value) in enumerate(zip(types, values, strict=True)):
                if value is None or value == "":
                    continue  # a blank cell
                if kind == "text":
                    sheet.write_string(row, col, value)  # never a formula or a URL
                elif kind == "int":
                    sheet.write_number(row, col, value)
                else:
                    sheet.write_datetime(row, col, value, date_format)
            row += 1
        self.row = row

    def close(self) -> None:
        try:
            self.book.close()
        except FileCreateError as exc:
            # xlsxwriter wraps the OSError of a full or failing disk: the engine needs its errno.
            cause = exc.args[0] if exc.args else None
            if isinstance(cause, OSError):
                raise cause from None
            raise
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def abort(self) -> None:
        """Stop without assembling the workbook (the caller removes the output path)."""
        shutil.rmtree(self.tmpdir, ignore_errors=True)


# -- merging parts ------------------------------------------------------------------------------


def merge_csv(parts: Sequence[Path], out: Path) -> None:
    """The first part whole, then every other part without its BOM and header line."""
    with out.open("wb") as dst:
        for index, part in enumerate(parts):
            with part.open("rb") as src:
                if index:
                    header = src.readline()  # column names never hold a line break
                    if not header.startswith(BOM.encode()):
                        raise MergeError(f"{part.name} does not start with a BOM and a header")
                shutil.copyfileobj(src, dst, _BLOCK)


class MergeError(ValueError):
    """A part is not a workbook this module wrote."""


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def _dimension(head: bytes) -> tuple[bytes, int, bytes, int]:
    match = _DIMENSION.search(head)
    if match is None:
        raise MergeError("no <dimension> in the sheet")
    first_col, first_row, last_col, last_row = match.groups()
    return first_col, int(first_row), last_col or first_col, int(last_row or first_row)


def _sheet_head(part: Path) -> bytes:
    with zipfile.ZipFile(part) as book, book.open(SHEET) as sheet:
        return sheet.read(_HEAD_BYTES)


def _copy_rows(part: Path, dst: Any, *, header: bool) -> bytes:
    """Stream the rows of `part`'s sheet (between <sheetData> and </sheetData>) into `dst`,
    its header row only if `header`; returns what follows them (margins, the closing tag)."""
    end = b"</sheetData>"
    keep = len(end) + _HEAD_BYTES  # held back: </sheetData> may straddle two blocks
    with zipfile.ZipFile(part) as book, book.open(SHEET) as sheet:
        buffer = sheet.read(_HEAD_BYTES)
        start = buffer.find(b"<sheetData>")
        if start < 0 or not buffer.startswith(b'<row r="1"', start + len(b"<sheetData>")):
            raise MergeError(f"no <sheetData> starting with the header row in {part.name}")
        buffer = buffer[start + len(b"<sheetData>") :]
        if not header:
            buffer = buffer[buffer.index(b"</row>") + len(b"</row>") :]
        while block := sheet.read(_BLOCK):
            buffer += block
            if len(buffer) > keep:
                dst.write(buffer[:-keep])
                buffer = buffer[-keep:]
    stop = buffer.rfind(end)
    if stop < 0:
        raise MergeError(f"no </sheetData> in {part.name}")
    dst.write(buffer[:stop])
    return buffer[stop + len(end) :]


def merge_xlsx(parts: Sequence[Path], out: Path) -> None:
    """The first part's workbook with the rows of every part, in order, in its one sheet."""
    if not parts:
        raise MergeError("nothing to merge")
    bounds = [_dimension(_sheet_head(part)) for part in parts]
    last_col = max((b[2] for b in bounds), key=_column_number)
    last_row = max(b[3] for b in bounds)
    dimension = b'<dimension ref="%s%d:%s%d"/>' % (bounds[0][0], bounds[0][1], last_col, last_row)

    with zipfile.ZipFile(parts[0]) as first, zipfile.ZipFile(out, "w") as merged:
        for info in first.infolist():
            if info.filename != SHEET:
                merged.writestr(info, first.read(info))
                continue
            with first.open(info) as sheet:
                head = sheet.read(_HEAD_BYTES)
            start = head.find(b"<sheetData>")
            if start < 0:
                raise MergeError(f"no <sheetData> in {parts[0].name}")
            target = zipfile.ZipInfo(SHEET, date_time=info.date_time)
            target.compress_type, target.external_attr = info.compress_type, info.external_attr
            with merged.open(target, "w") as dst:
                dst.write(_DIMENSION.sub(dimension, head[:start], count=1) + b"<sheetData>")
                tails = [_copy_rows(part, dst, header=i == 0) for i, part in enumerate(parts)]
                dst.write(b"</sheetData>" + tails[0])
