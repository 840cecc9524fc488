"""Scaling with processes: labels/s with N worker processes, status requests/s with N web
processes, each against N x the rate of one process measured in the same run.

    .venv/bin/python bench/scaling.py [--processes 1,2,4,8,16] [--labels 20000] [--all]

Labels: one batch of --labels (chunks of 1,000, so up to 20 render in parallel) through
bench/batch.py's real stack per N. Status: bench/status_wrk.py's watch-token poll (the rendered
200, as a page sees after each change) with N gunicorn processes and wrk's connections scaled
with N. Counts above this machine's cores are skipped unless --all (they would measure the
scheduler, not us): on a 16-core machine all of 1–16 run. Target: >= 0.8 x N.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from common import machine

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> str:
    argv = [sys.executable, str(HERE / script), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True, cwd=HERE.parent).stdout


def labels_per_second(processes: int, labels: int) -> float:
    out = run("batch.py", "--labels", str(labels), "--workers", str(processes), "--repeat", "2")
    rates = [
        float(m.group(1))
        for m in re.finditer(rf"^\s*{processes}\s+{labels}\s+\d+\s+[\d.]+\s+(\d+)", out, re.M)
    ]
    if not rates:
        raise RuntimeError(f"no figures from batch.py:\n{out}")
    return max(rates)


def status_per_second(processes: int) -> float:
    out = run(
        "status_wrk.py",
        "--web-workers",
        str(processes),
        "--connections",
        str(16 * processes),
        "--duration",
        "8",
    )
    found = re.search(r"status fragment \(200, rendered\)\s+(\d+) req/s", out)
    if found is None:
        raise RuntimeError(f"no figures from status_wrk.py:\n{out}")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2,4,8,16")
    parser.add_argument("--labels", type=int, default=20000)
    parser.add_argument("--all", action="store_true", help="also counts above the core count")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    counts = [int(n) for n in args.processes.split(",")]
    skipped = [n for n in counts if n > cores and not args.all]
    counts = [n for n in counts if n not in skipped]
    print(f"# bench/scaling.py — {machine()}")
    if skipped:
        print(f"# skipped (more processes than the {cores} cores here; --all runs them): {skipped}")
    print(f"{'processes':>9s} {'labels/s':>9s} {'x 1-proc':>8s} {'status/s':>9s} {'x 1-proc':>8s}")
    base_labels = base_status = 0.0
    for n in counts:
        labels = labels_per_second(n, args.labels)
        status = status_per_second(n)
        if n == counts[0]:
            base_labels, base_status = labels / n, status / n
        print(
            f"{n:9d} {labels:9.0f} {labels / (n * base_labels):8.2f} {status:9.0f} "
            f"{status / (n * base_status):8.2f}",
            flush=True,
        )
    print("# x 1-proc: rate with N processes / (N x the rate with one); target >= 0.8")


if __name__ == "__main__":
    main()
