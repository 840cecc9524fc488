"""Potting-lot exports through the real system: submit → downloadable, and worker memory.

    .venv/bin/python bench/export.py [--rows 100000] [--workers 1,2] [--repeat 2]
                                     [--formats csv,csv_semicolon,xlsx]
                                     [--chunk-rows N] [--csv-chunk-rows N]

An embedded redis-server, real `python -m dramatiq … --processes N --threads 1` workers
(prefetch 1, as `pressroom run` starts them) and a temporary PRESSROOM_DATA with --rows demo
lots. Each export is submitted in-process with `webapp.jobs.submit` (as the web process does)
and timed until its row is `done` (the file is downloadable). Before each run one lot is
edited, so the data version and the input hash change and no run reuses an earlier file.
Worker memory: the peak of the summed resident sets of the worker processes, sampled while the
job runs, and the largest single process's peak (VmHWM).

Baselines, measured in this process in the same run on the same rows (one direct SQL query,
ordered like the table): a plain `csv.writer` dump, and a plain xlsxwriter constant-memory dump
(`write_row` of the raw values, no formats). Ratios are ours / baseline.
Targets (DESIGN §6): 100,000 rows CSV < 5 s and XLSX < 20 s, worker RSS < 250 MB.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sqlite3
import tempfile
import time
from pathlib import Path

from common import machine
from stack import Stack, run_job

FORMATS = {  # the export menu's choices (webapp/views/nursery.py EXPORT_FORMATS)
    "csv": ("potting_lots_csv", {}),
    "csv_semicolon": ("potting_lots_csv", {"delimiter": ";"}),
    "xlsx": ("potting_lots_xlsx", {}),
}
COLUMNS = "lot_number, plant_name, pot_size, quantity, potting_date, location, customer"


def baseline_rows(stack: Stack):  # type: ignore[no-untyped-def]
    """Every lot by one direct query on the database file, in the table's order."""
    database = stack.app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    conn = sqlite3.connect(database)
    try:
        cursor = conn.execute(f"SELECT {COLUMNS} FROM potting_lots ORDER BY lot_number")
        while batch := cursor.fetchmany(5000):
            yield from batch
    finally:
        conn.close()


def baseline_csv(stack: Stack, out: Path) -> float:
    started = time.perf_counter()
    with out.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS.split(", "))
        writer.writerows(baseline_rows(stack))
    return time.perf_counter() - started


def baseline_xlsx(stack: Stack, out: Path) -> float:
    import xlsxwriter

    started = time.perf_counter()
    book = xlsxwriter.Workbook(str(out), {"constant_memory": True, "tmpdir": str(out.parent)})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, COLUMNS.split(", "))
    for index, row in enumerate(baseline_rows(stack), start=1):
        sheet.write_row(index, 0, row)  # dates stay ISO text: no conversion, no formats
    book.close()
    return time.perf_counter() - started


def touch_one_lot(stack: Stack, run: int) -> None:
    """Edit one lot, so the next export has a new data version (no file is reused)."""
    import sqlalchemy as sa

    from webapp.db import write_txn
    from webapp.models import PottingLot

    with stack.app.app_context(), write_txn() as session:
        session.execute(
            sa.update(PottingLot)
            .where(PottingLot.id == 1 + run % 100)
            .values(quantity=PottingLot.quantity + 1)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--formats", default="csv,csv_semicolon,xlsx")
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=None,
        help="CHUNK_ROWS for the workers (XLSX rows per part; default 25000)",
    )
    parser.add_argument(
        "--csv-chunk-rows",
        type=int,
        default=None,
        help="CSV_CHUNK_ROWS for the workers (CSV rows per part; default 250000)",
    )
    args = parser.parse_args()
    formats = args.formats.split(",")
    logging.basicConfig(level=logging.WARNING)

    print(f"# bench/export.py — {machine()}")
    print(
        f"# {args.rows:,} rows; CHUNK_ROWS {args.chunk_rows or 'default (25000)'}; "
        f"CSV_CHUNK_ROWS {args.csv_chunk_rows or 'default (250000)'}"
    )
    with Stack() as stack, tempfile.TemporaryDirectory() as tmp:
        stack.start_redis()
        seeded = time.perf_counter()
        stack.init_app(args.rows)
        print(f"# seeded {args.rows:,} demo lots in {time.perf_counter() - seeded:.1f} s")
        for name, value in (
            ("CHUNK_ROWS", args.chunk_rows),
            ("CSV_CHUNK_ROWS", args.csv_chunk_rows),
        ):
            if value:
                stack.env[name] = str(value)
        base = {
            "csv": min(baseline_csv(stack, Path(tmp) / "b.csv") for _ in range(2)),
            "xlsx": baseline_xlsx(stack, Path(tmp) / "b.xlsx"),
        }
        print(
            f"# baselines (direct query, this process): csv.writer {base['csv']:.2f} s, "
            f"plain xlsxwriter {base['xlsx']:.2f} s"
        )
        print(
            f"{'workers':>7s} {'format':>13s} {'parts':>5s} {'submit ms':>9s} {'wall s':>7s} "
            f"{'rows/s':>8s} {'MB':>6s} {'RSS MB: sum':>11s} {'max/proc':>8s}  ours/baseline"
        )
        run = 0
        for count in (int(n) for n in args.workers.split(",")):
            booted = time.perf_counter()
            master = stack.start_workers(count)
            print(f"# {count} worker process(es) ready in {time.perf_counter() - booted:.1f} s")
            for fmt in formats:
                kind, options = FORMATS[fmt]
                for _ in range(args.repeat):
                    run += 1
                    touch_one_lot(stack, run)
                    r = run_job(stack, master.pid, kind, {"filter": {}, **options})
                    baseline = base["xlsx" if fmt == "xlsx" else "csv"]
                    print(
                        f"{count:7d} {fmt:>13s} {r['chunks']:5d} {r['submit'] * 1000:9.0f} "
                        f"{r['wall']:7.2f} {args.rows / r['wall']:8.0f} "
                        f"{r['size'] / 1e6:6.1f} {r['peak_sum_kib'] / 1024:11.0f} "
                        f"{r['hwm_kib'] / 1024:8.0f}  {r['wall'] / baseline:5.2f}x",
                        flush=True,
                    )
            stack.stop("workers")
    print(f"# load average at the end: {machine().rsplit('load average ', 1)[1]}")


if __name__ == "__main__":
    main()
