"""What every table export shares (the potting lots', the lab's): the file name, the split in
parts of rows, the merge, and a render that streams the rows in keyset batches, checks that
the data did not move under it, and never leaves a half-written file.

A kind says how to read its filter from the job (`filter_of`), how to count and version the
rows (`snapshot`), how to read a slice of them (`rows`), how they become cells (`cells`), and
its writer and merge (CSV or XLSX from webapp/exports.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from flask import current_app

from webapp import exports
from webapp.documents.base import DocumentKind, Part, RenderContext
from webapp.errors import PermanentError
from webapp.models import Job


class RowExport(DocumentKind):
    unit = "row"
    limit_key = "MAX_EXPORT_ROWS"
    #: Config key of the rows a part of a split export has.
    chunk_key: ClassVar[str]
    #: The file name's start, before the day.
    stem: ClassVar[str]
    #: The code a render fails with when the rows changed while it read them.
    changed_code: ClassVar[str]
    #: The file's columns (header and cell types).
    columns: ClassVar[tuple[exports.Column, ...]]

    # -- what a kind says --------------------------------------------------------------------

    def filter_of(self, job: Job) -> Any:
        raise NotImplementedError

    def snapshot(self, table_filter: Any) -> Any:
        """The rows' count and version now (an object with `.version`)."""
        raise NotImplementedError

    def rows(self, table_filter: Any, start: int, stop: int) -> Iterator[Sequence[Any]]:
        raise NotImplementedError

    def cells(self, rows: Sequence[Any]) -> Iterable[Sequence[Any]]:
        return rows

    def merge_files(self, parts: list[Path], out: Path) -> None:
        raise NotImplementedError

    def writer(self, job: Job, out: Path, start: int) -> exports.RowWriter:
        raise NotImplementedError

    def options(self, params: Any) -> dict[str, Any]:
        """The format's own parameters, normalised (defaults spelled out)."""
        return {}

    # -- the same for every export -----------------------------------------------------------

    def file_name(self, job: Job) -> str:
        created = job.created_at.replace(tzinfo=UTC).astimezone(ZoneInfo(current_app.config["TZ"]))
        return f"{self.stem}_{created:%Y-%m-%d}{self.suffix}"

    def split(self, job: Job, config: dict[str, Any]) -> list[Part]:
        size = int(config[self.chunk_key])
        total = job.progress_total
        if total <= size:
            return []
        return [
            Part(index, start, min(start + size, total))
            for index, start in enumerate(range(0, total, size))
        ]

    def merge(self, job: Job, ctx: RenderContext, parts: list[Path], out: Path) -> None:
        try:
            self.merge_files(parts, out)
        except exports.MergeError as exc:
            raise PermanentError("merge_failed", reason=str(exc)) from None

    def render(self, job: Job, ctx: RenderContext, out: Path, part: Part | None) -> None:
        table_filter = self.filter_of(job)
        start, stop = (part.start, part.stop) if part else (0, job.progress_total)
        ctx.progress(0, "writing_rows", force=True)
        writer = self.writer(job, out, start)
        try:
            written = 0
            for rows in self.rows(table_filter, start, stop):
                writer.write(self.cells(rows))
                written += len(rows)
                ctx.progress(written, "writing_rows")  # also the cancel check and heartbeat
            expected = job.summary["data_version"]
            if written != stop - start or self.snapshot(table_filter).version != expected:
                raise PermanentError(self.changed_code)  # parts find their slice by position
            ctx.progress(written, "writing_file", force=True)
        except BaseException:
            writer.abort()  # a cancel stops at once, without assembling a workbook
            raise
        writer.close()


class CsvFormat(RowExport):
    """CSV: UTF-8 with BOM, `,` or `;` (the `delimiter` parameter), parts concatenated."""

    suffix = ".csv"
    media_type = "text/csv; charset=utf-8"
    chunk_key = "CSV_CHUNK_ROWS"

    def options(self, params: Any) -> dict[str, Any]:
        return {"delimiter": params.delimiter}

    def merge_files(self, parts: list[Path], out: Path) -> None:
        exports.merge_csv(parts, out)

    def writer(self, job: Job, out: Path, start: int) -> exports.RowWriter:
        return exports.CsvRows(out, self.columns, delimiter=job.params["delimiter"])


class XlsxFormat(RowExport):
    """Excel: one sheet named after the file, written row by row, parts merged."""

    suffix = ".xlsx"
    media_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    chunk_key = "CHUNK_ROWS"

    def limit(self, config: dict[str, Any]) -> int | None:
        # A sheet holds 1,048,576 rows; xlsxwriter drops the cells of any further row silently.
        return min(super().limit(config) or exports.XLSX_MAX_ROWS, exports.XLSX_MAX_ROWS)

    def merge_files(self, parts: list[Path], out: Path) -> None:
        exports.merge_xlsx(parts, out)

    def writer(self, job: Job, out: Path, start: int) -> exports.RowWriter:
        newest = job.summary.get("newest")  # None when no row matches
        return exports.XlsxRows(
            out,
            self.columns,
            first_row=start,
            sheet_name=self.stem,
            created=datetime.fromisoformat(newest) if newest else None,
        )
