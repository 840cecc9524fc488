"""Big batches through the real system: submit → downloadable, file size, worker memory.

    .venv/bin/python bench/batch.py [--labels 1000,10000] [--workers 1,2] [--repeat 2]
                                    [--seed-sample 1000] [--layout roll_62x29]

An embedded redis-server, real `python -m dramatiq workers.broker:setup workers.actors
--processes N --threads 1` workers (prefetch 1) and a temporary PRESSROOM_DATA with demo lots.
Jobs are submitted in-process with `webapp.jobs.submit` (as the web process does) and timed
until their row is `done` (the file is downloadable). Each run uses another printer offset so
no run is served from an earlier run's file. Worker memory: the peak of the summed resident
sets of the worker processes, sampled while jobs run, and each process's own peak (VmHWM).
The seed method (reportlab + a qrcode PNG per label) renders --seed-sample of the same labels
in this process; its time for N labels is scaled from that (it is linear in the labels).
Targets (DESIGN §6): 1,000 labels < 2 s; 10,000 < 15 s and <= 1/20 of the seed method's time;
peak RSS < 300 MB; < 2 KB per label; throughput >= 0.8 x N with N worker processes.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from common import machine, render_seed
from stack import Stack, run_job

KIND = "potting_lot_labels"


def seed_ms_per_label(stack: Stack, sample: int, layout_key: str) -> float:
    from webapp.documents.potting_lots import load_lots
    from webapp.nursery.labels import label_for
    from webapp.pdf.layout import PRESETS

    with stack.app.app_context():
        lots = load_lots(list(range(1, sample + 1)))
        items = [label_for(lots[i]) for i in sorted(lots)]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        render_seed(items, PRESETS[layout_key], Path(tmp) / "seed.pdf")
        return (time.perf_counter() - started) / len(items) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", default="1000,10000")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed-sample", type=int, default=1000)
    parser.add_argument("--layout", default="roll_62x29")
    parser.add_argument(
        "--worker-timeout-ms",
        type=int,
        default=None,
        help="dramatiq_worker_timeout for the workers: how long an idle worker "
        "may sleep between polls of Redis (Dramatiq's default: 1000)",
    )
    parser.add_argument(
        "--chunk-labels",
        type=int,
        default=None,
        help="CHUNK_LABELS for the workers (labels per chunk; default 1000)",
    )
    args = parser.parse_args()
    sizes = [int(n) for n in args.labels.split(",")]
    logging.basicConfig(level=logging.WARNING)

    print(f"# bench/batch.py — {machine()}")
    print(
        f"# layout {args.layout}; dramatiq_worker_timeout "
        f"{args.worker_timeout_ms or 'default (1000)'} ms; CHUNK_LABELS "
        f"{args.chunk_labels or 'default (1000)'}"
    )
    results: dict[tuple[int, int], float] = {}
    chunked: set[int] = set()  # sizes split into parallel chunks (a 1,000-label job is one)
    with Stack() as stack:
        stack.start_redis()
        stack.init_app(max(sizes))
        seed_ms = seed_ms_per_label(stack, min(args.seed_sample, max(sizes)), args.layout)
        print(
            f"# seed method: {seed_ms:.2f} ms/label (measured on "
            f"{min(args.seed_sample, max(sizes))} labels, this run)"
        )
        print(
            f"{'workers':>7s} {'labels':>7s} {'chunks':>6s} {'wall s':>7s} {'labels/s':>9s} "
            f"{'B/label':>8s} {'RSS MB: sum':>11s} {'max/proc':>8s}  seed/ours"
        )
        run = 0
        for count in (int(n) for n in args.workers.split(",")):
            booted = time.perf_counter()
            master = stack.start_workers(
                count, idle_ms=args.worker_timeout_ms, chunk_labels=args.chunk_labels
            )
            print(f"# {count} worker process(es) ready in {time.perf_counter() - booted:.1f} s")
            for size in sizes:
                walls = []
                for _ in range(args.repeat):
                    run += 1
                    params = {
                        "lot_ids": list(range(1, size + 1)),
                        "layout": args.layout,
                        "offset_x": round(-10 + run * 0.1, 1),
                    }  # a new file every run
                    result = run_job(stack, master.pid, KIND, params)
                    walls.append(result["wall"])
                    if result["chunks"] > 1:
                        chunked.add(size)
                    seed_s = seed_ms * size / 1000
                    print(
                        f"{count:7d} {size:7d} {result['chunks']:6d} {result['wall']:7.2f} "
                        f"{size / result['wall']:9.0f} {result['size'] / size:8.0f} "
                        f"{result['peak_sum_kib'] / 1024:11.0f} {result['hwm_kib'] / 1024:8.0f}"
                        f"  {seed_s / result['wall']:5.1f}x (seed ≈ {seed_s:.1f} s)",
                        flush=True,
                    )
                results[(count, size)] = min(walls)
            stack.stop("workers")
    counts = sorted({c for c, _ in results})
    if len(counts) > 1:
        print(
            "# scaling (best runs): throughput with N processes / (N x throughput with 1); "
            "target >= 0.8"
        )
        for size in sorted(chunked):
            base = results[(counts[0], size)] * counts[0]
            for count in counts[1:]:
                print(
                    f"#   {size} labels, {count} processes: {base / (results[(count, size)] * count):.2f}"
                )
    print(f"# load average at the end: {machine().rsplit('load average ', 1)[1]}")


if __name__ == "__main__":
    main()
