"""Potting-lot and lab exports through the real system: submit → downloadable, worker memory.

    .venv/bin/python bench/export.py [--rows 100000] [--workers 1,2] [--repeat 2]
                                     [--formats csv,csv_semicolon,xlsx]
                                     [--chunk-rows N] [--csv-chunk-rows N]

The lab's kinds are formats too (`--formats protocols_csv,protocols_xlsx,reports_csv`): they
seed --rows demo protocols (with their reports) instead of lots, and their baselines dump the
same join the kinds read.

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
    "protocols_csv": ("protocols_csv", {}),  # webapp/views/lab_tables.py EXPORT_FORMATS
    "protocols_xlsx": ("protocols_xlsx", {}),
    "reports_csv": ("reports_csv", {}),
}
LAB = {"protocols_csv", "protocols_xlsx", "reports_csv"}
COLUMNS = "lot_number, plant_name, pot_size, quantity, potting_date, location, customer"
LOTS_SQL = f"SELECT {COLUMNS} FROM potting_lots ORDER BY lot_number"
# The columns webapp/documents/lab_exports.py reads, by the same joins, in id order.
PROTOCOLS_SQL = (
    "SELECT p.number, p.received_on, p.status, p.analysis_type, p.animal_id, p.species, v.name,"
    " v.clinic, v.email, r.status FROM protocols p JOIN veterinarians v ON v.id = p.veterinarian_id"
    " LEFT JOIN reports r ON r.protocol_id = p.id ORDER BY p.id"
)
REPORTS_SQL = (
    "SELECT p.number, p.received_on, r.status, r.version, r.histopathologist, r.diagnosis,"
    " r.finalised_at, r.pdf_sha256, coalesce(json_array_length(r.cassettes), 0)"
    " FROM reports r JOIN protocols p ON p.id = r.protocol_id ORDER BY r.id"
)


def baseline_rows(stack: Stack, sql: str):  # type: ignore[no-untyped-def]
    """Every row of `sql` by one direct query on the database file."""
    database = stack.app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    conn = sqlite3.connect(database)
    try:
        cursor = conn.execute(sql)
        while batch := cursor.fetchmany(5000):
            yield from batch
    finally:
        conn.close()


def baseline_csv(stack: Stack, out: Path, sql: str = LOTS_SQL) -> float:
    started = time.perf_counter()
    with out.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS.split(", "))  # (the lab's header differs; its cost does not)
        writer.writerows(baseline_rows(stack, sql))
    return time.perf_counter() - started


def baseline_xlsx(stack: Stack, out: Path, sql: str = LOTS_SQL) -> float:
    import xlsxwriter

    started = time.perf_counter()
    book = xlsxwriter.Workbook(str(out), {"constant_memory": True, "tmpdir": str(out.parent)})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, COLUMNS.split(", "))
    for index, row in enumerate(baseline_rows(stack, sql), start=1):
        sheet.write_row(index, 0, row)  # dates stay ISO text: no conversion, no formats
    book.close()
    return time.perf_counter() - started


def touch_one_protocol(stack: Stack, run: int) -> None:
    """Edit one protocol, so the next lab export has a new data version."""
    import sqlalchemy as sa

    from webapp.db import write_txn
    from webapp.models import Protocol, utcnow

    with stack.app.app_context(), write_txn() as session:
        session.execute(
            sa.update(Protocol).where(Protocol.id == 1 + run % 100).values(updated_at=utcnow())
        )


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
        lab = [fmt for fmt in formats if fmt in LAB]
        stack.init_app(args.rows if len(lab) < len(formats) else 0)
        if lab:
            from webapp.lab.demo import seed_lab

            with stack.app.app_context():
                seed_lab(args.rows)
        what = " and ".join(["lots"] * (len(lab) < len(formats)) + ["protocols"] * bool(lab))
        print(f"# seeded {args.rows:,} demo {what} in {time.perf_counter() - seeded:.1f} s")
        for name, value in (
            ("CHUNK_ROWS", args.chunk_rows),
            ("CSV_CHUNK_ROWS", args.csv_chunk_rows),
        ):
            if value:
                stack.env[name] = str(value)
        base: dict[str, float] = {}
        if len(lab) < len(formats):
            base["csv"] = min(baseline_csv(stack, Path(tmp) / "b.csv") for _ in range(2))
            base["xlsx"] = baseline_xlsx(stack, Path(tmp) / "b.xlsx")
        if {"protocols_csv", "protocols_xlsx"} & set(lab):
            base["protocols_csv"] = baseline_csv(stack, Path(tmp) / "p.csv", PROTOCOLS_SQL)
            base["protocols_xlsx"] = baseline_xlsx(stack, Path(tmp) / "p.xlsx", PROTOCOLS_SQL)
        if "reports_csv" in lab:
            base["reports_csv"] = baseline_csv(stack, Path(tmp) / "r.csv", REPORTS_SQL)
        print(
            "# baselines (direct query, this process; csv.writer / plain xlsxwriter): "
            + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in base.items())
        )
        print(
            f"{'workers':>7s} {'format':>14s} {'parts':>5s} {'submit ms':>9s} {'wall s':>7s} "
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
                    (touch_one_protocol if fmt in LAB else touch_one_lot)(stack, run)
                    r = run_job(stack, master.pid, kind, {"filter": {}, **options})
                    baseline = base[fmt if fmt in LAB else "xlsx" if fmt == "xlsx" else "csv"]
                    print(
                        f"{count:7d} {fmt:>14s} {r['chunks']:5d} {r['submit'] * 1000:9.0f} "
                        f"{r['wall']:7.2f} {args.rows / r['wall']:8.0f} "
                        f"{r['size'] / 1e6:6.1f} {r['peak_sum_kib'] / 1024:11.0f} "
                        f"{r['hwm_kib'] / 1024:8.0f}  {r['wall'] / baseline:5.2f}x",
                        flush=True,
                    )
            stack.stop("workers")
    print(f"# load average at the end: {machine().rsplit('load average ', 1)[1]}")


if __name__ == "__main__":
    main()
