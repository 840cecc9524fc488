"""Run every benchmark in turn (`make bench`); each prints its figures and ratios.

    .venv/bin/python bench/run_all.py [--quick] [--wait-quiet SECONDS]

Timings on a shared 2-core box are only worth reading when nothing else runs: before each
benchmark this waits (up to --wait-quiet seconds, default 120) for the 1-minute load average
to drop below 0.5, and says so when it does not. --quick runs smaller sizes (a smoke test).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL = [
    ["render.py"],
    ["batch.py", "--workers", "1,2"],
    ["export.py", "--workers", "1,2"],
    ["enqueue.py"],
    ["status_wrk.py"],
    ["status_cost.py"],
    ["history.py"],
    ["load.py"],
    ["scaling.py"],
    ["lab.py"],
    ["admin.py"],
]
QUICK = [
    ["render.py", "--labels", "1000", "--repeat", "2", "--seed-sample", "200"],
    [
        "batch.py",
        "--labels",
        "1000,3000",
        "--workers",
        "2",
        "--repeat",
        "1",
        "--seed-sample",
        "200",
    ],
    ["export.py", "--rows", "20000", "--workers", "2", "--repeat", "1"],
    ["enqueue.py", "--requests", "30"],
    ["status_wrk.py", "--duration", "3"],
    ["status_cost.py", "--requests", "200"],
    ["history.py", "--history", "0,5000", "--submits", "100"],
    ["load.py", "--browsers", "20", "--submitters", "2", "--duration", "5"],
    ["lab.py", "--protocols", "60", "--requests", "40"],
    ["admin.py", "--documents", "200", "--workers", "2", "--jobs", "10000"],
]


def wait_quiet(limit: float) -> None:
    deadline = time.monotonic() + limit
    while os.getloadavg()[0] >= 0.5 and time.monotonic() < deadline:
        time.sleep(5)  # waiting for other work on the machine to finish
    load = os.getloadavg()[0]
    if load >= 0.5:
        print(f"# WARNING: load average {load:.2f}: other work is running, figures are disturbed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--wait-quiet", type=float, default=120)
    args = parser.parse_args()
    failed = []
    for argv in QUICK if args.quick else FULL:
        wait_quiet(args.wait_quiet)
        print(f"\n$ {Path(sys.executable).name} bench/{' '.join(argv)}", flush=True)
        if subprocess.run(
            [sys.executable, str(HERE / argv[0]), *argv[1:]], cwd=HERE.parent
        ).returncode:
            failed.append(argv[0])
    if failed:
        print(f"# failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
