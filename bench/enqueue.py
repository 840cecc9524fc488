"""Enqueue latency: POST /api/v1/jobs → 202, p50/p99 under 10 concurrent clients.

    .venv/bin/python bench/enqueue.py [--clients 10] [--requests 100] [--web-workers N]
                                      [--threads T] [--wrk-seconds 10]

A real gunicorn (gthread, as in the Procfile) on a temporary PRESSROOM_DATA with demo lots,
an embedded redis-server, an API token made in-process. Each client is a thread with its own
keep-alive connection; every request asks for a different set of lots, so none is answered
by an identical live job (that would be a cheaper 200). No workers run: jobs stay queued.
The clients are Python threads on the same 2 cores as gunicorn, so their own time is part of
the figures. Then the same load from Debian's `wrk` (a native client, as DESIGN §6 measures
the status path: `wrk -t2 -c10` with a Lua script that posts other lots each time), which
leaves the cores to the server. Target (DESIGN §6): p99 < 50 ms.
N and T default to what `pressroom run` starts on this machine (2 per core, 2 threads each).
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from urllib.parse import urlsplit

from common import machine
from stack import WEB_PROCESSES, Stack, create_token

from workers.processes import WEB_THREADS

LOTS = 2000
REFUSED: list[str] = []  # the first answers that were not 2xx, shown at the end


def client(
    base: str, token: str, bodies: list[dict], latencies: list[float], statuses: list[int]
) -> None:
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        for body in bodies:
            payload = json.dumps(body)
            started = time.perf_counter()
            conn.request("POST", "/api/v1/jobs", body=payload, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            latencies.append(time.perf_counter() - started)
            statuses.append(answer.status)
            if answer.status >= 400 and len(REFUSED) < 3:
                REFUSED.append(data[:300].decode(errors="replace"))
    finally:
        conn.close()


WRK_SCRIPT = """
math.randomseed(7)
request = function()
  local ids = {}
  for i = 1, math.random(1, 40) do ids[i] = math.random(1, %(lots)d) end
  local body = '{"kind":"potting_lot_labels","params":{"lot_ids":[' .. table.concat(ids, ",") .. ']}}'
  return wrk.format("POST", "/api/v1/jobs", {
    ["Authorization"] = "Bearer %(token)s", ["Content-Type"] = "application/json"}, body)
end
"""


def wrk_submits(base: str, token: str, clients: int, seconds: int) -> str:
    """`wrk` posting submits from `clients` connections for `seconds`: its summary line."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"lots": LOTS, "token": token})
    argv = ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", script.name]
    try:
        out = subprocess.run([*argv, base], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)

    def grab(pattern: str) -> str:
        found = re.search(pattern, out)
        return found.group(1) if found else "?"

    rps = grab(r"Requests/sec:\s+([\d.]+)")
    p50, p90, p99 = (grab(rf"\s{pct}%\s+(\S+)") for pct in (50, 90, 99))
    refused = grab(r"Non-2xx or 3xx responses: (\d+)").replace("?", "0")
    return (
        f"wrk -t2 -c{clients} -d{seconds}s: {rps} submits/s; latency p50 {p50}  p90 {p90}  "
        f"p99 {p99} (target < 50ms); non-2xx {refused}"
    )


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--requests", type=int, default=100, help="per client")
    parser.add_argument("--web-workers", type=int, default=WEB_PROCESSES)
    parser.add_argument("--threads", type=int, default=WEB_THREADS)
    parser.add_argument("--wrk-seconds", type=int, default=10, help="0: no wrk run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rng = random.Random(7)

    def body() -> dict:
        ids = rng.sample(range(1, LOTS + 1), rng.randint(1, 40))
        return {"kind": "potting_lot_labels", "params": {"lot_ids": ids}}

    print(f"# bench/enqueue.py — {machine()}")
    with Stack() as stack:
        stack.start_redis()
        stack.init_app(LOTS)
        token = create_token(stack)
        base = stack.start_web(args.web_workers, args.threads)
        print(
            f"# gunicorn gthread {args.web_workers} workers x {args.threads} threads; "
            f"{args.clients} clients x {args.requests} requests"
        )
        warm: list[float] = []
        client(base, token, [body() for _ in range(20)], warm, [])  # imports, pools, caches
        print(
            f"first requests after start ms: {warm[0] * 1000:.1f}, {warm[1] * 1000:.1f} "
            "(target < 100; one per web process at most)"
        )
        latencies: list[float] = []
        statuses: list[int] = []
        threads = [
            threading.Thread(
                target=client,
                args=(base, token, [body() for _ in range(args.requests)], latencies, statuses),
            )
            for _ in range(args.clients)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        native = (
            wrk_submits(base, token, args.clients, args.wrk_seconds)
            if shutil.which("wrk") and args.wrk_seconds
            else "wrk: not installed (make system-deps), or --wrk-seconds 0"
        )
    ms = [v * 1000 for v in latencies]
    codes = {code: statuses.count(code) for code in sorted(set(statuses))}
    print(f"requests {len(ms)} in {wall:.1f} s ({len(ms) / wall:.0f}/s); answers {codes}")
    print(
        f"latency ms: p50 {percentile(ms, 50):.1f}  p90 {percentile(ms, 90):.1f}  "
        f"p99 {percentile(ms, 99):.1f} (target < 50)  max {max(ms):.1f}  "
        f"mean {statistics.fmean(ms):.1f}"
    )
    print(native)
    for text in REFUSED:
        print(f"refused: {text}")
    print(f"# load average at the end: {machine().rsplit('load average ', 1)[1]}")


if __name__ == "__main__":
    main()
