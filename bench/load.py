"""Load test of one node: browsers watching jobs while clients submit, for a fixed time.

    .venv/bin/python bench/load.py [--browsers 200] [--submitters 10] [--duration 60]
                                   [--web-workers N] [--threads T] [--workers 2] [--labels 60]
                                   [--think 0] [--warmup 5]

Loopback only, bounded: a real gunicorn (gthread, as in the Procfile), real Dramatiq workers and
the embedded redis-server on a temporary PRESSROOM_DATA. Every browser is logged in (its own
session cookie), opens the page of a live job, reads the watch-token poll URL from it and polls
it once a second with If-None-Match, as htmx does; when its job ends it opens the page of one
of the newest live jobs (after `--think` seconds on the finished page: 0 by default, the
heaviest case). Every submitter posts a new job (`POST /api/v1/jobs`, other lots each time)
once a second. Afterwards every job submitted must reach `done` (none lost, none stuck).

Prints: requests, errors (anything but 200/202/304), status latency p50/p99 (target: p99 < 100
ms), page and submit latency p50/p99 — each for the whole run and without its first `--warmup`
seconds, when all the browsers open their pages within one second (a herd that a web restart
also makes: shown, not hidden) — jobs submitted/done, and the load average. asyncio HTTP/1.1 clients
with keep-alive in this one process (1 core's worth at most), so the server keeps the rest.
N and T default to what `pressroom run` starts on this machine (2 per core, 2 threads each).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import re
import time
from collections import Counter
from urllib.parse import urlsplit

from common import machine
from stack import WEB_PROCESSES, Stack, create_token

from workers.processes import WEB_THREADS

KIND = "potting_lot_labels"


class Connection:
    """One keep-alive HTTP/1.1 connection (Content-Length bodies, which is all gunicorn sends
    for these answers)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):  # a keep-alive connection the server closed: reconnect once
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                return await self._exchange(method, path, headers, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed")
        status = int(status_line.split()[1])
        answer: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            answer[name.strip().lower()] = value.strip()
        length = int(answer.get("content-length", "0"))
        data = await self.reader.readexactly(length) if length else b""
        if answer.get("connection", "").lower() == "close":
            self.close()
        return status, answer, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Load:
    def __init__(
        self, base: str, cookie: str, token: str, lots: int, labels: int, think: float
    ) -> None:
        url = urlsplit(base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.cookie, self.token, self.lots, self.labels = cookie, token, lots, labels
        self.think = think
        # (seconds since the start, latency ms) of every request, by kind
        self.status_ms: list[tuple[float, float]] = []
        self.page_ms: list[tuple[float, float]] = []
        self.submit_ms: list[tuple[float, float]] = []
        self.t0 = 0.0
        self.answers: Counter[int] = Counter()
        self.errors: list[str] = []
        self.submitted: list[str] = []
        self.live: list[str] = []  # newest last
        self.stop_at = 0.0

    def connection(self) -> Connection:
        return Connection(self.host, self.port)

    async def submitter(self, number: int) -> None:
        conn, rng = self.connection(), random.Random(number)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        while time.monotonic() < self.stop_at:
            started = time.monotonic()
            lot_ids = rng.sample(range(1, self.lots + 1), self.labels)
            body = json.dumps({"kind": KIND, "params": {"lot_ids": lot_ids}}).encode()
            status, _headers, data = await conn.request("POST", "/api/v1/jobs", headers, body)
            self.submit_ms.append((started - self.t0, (time.monotonic() - started) * 1000))
            self.answers[status] += 1
            if status in (200, 202):
                job_id = json.loads(data)["id"]
                self.submitted.append(job_id)
                self.live.append(job_id)
            else:
                self.errors.append(f"submit: HTTP {status} {data[:200]!r}")
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        conn.close()

    async def browser(self, number: int) -> None:
        conn = self.connection()
        await asyncio.sleep(number / 200)  # browsers open their pages over the first second
        while time.monotonic() < self.stop_at:
            if not self.live:
                await asyncio.sleep(0.1)
                continue
            job_id = self.live[-1 - number % min(len(self.live), 20)]
            started = time.monotonic()
            status, _h, page = await conn.request("GET", f"/jobs/{job_id}", {"Cookie": self.cookie})
            self.page_ms.append((started - self.t0, (time.monotonic() - started) * 1000))
            self.answers[status] += 1
            found = re.search(rb'hx-get="([^"]+/status\?w=[^"]+)"', page)
            if status != 200:
                self.errors.append(f"page: HTTP {status}")
                continue
            if found is None:  # finished already: read, then the next one
                self.forget(job_id)
                await asyncio.sleep(self.think)
                continue
            url = found.group(1).decode().replace("&amp;", "&")
            etag = None
            while time.monotonic() < self.stop_at:
                started = time.monotonic()
                headers = {"Cookie": self.cookie, "HX-Request": "true"}
                if etag:
                    headers["If-None-Match"] = etag
                status, answer, body = await conn.request("GET", url, headers)
                self.status_ms.append((started - self.t0, (time.monotonic() - started) * 1000))
                self.answers[status] += 1
                if status not in (200, 304):
                    self.errors.append(f"status: HTTP {status}")
                    break
                etag = answer.get("etag", etag)
                if status == 200 and b"hx-get" not in body:  # final: htmx stops polling
                    self.forget(job_id)
                    await asyncio.sleep(self.think)
                    break
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        conn.close()

    def forget(self, job_id: str) -> None:
        if job_id in self.live:
            self.live.remove(job_id)

    async def run(self, browsers: int, submitters: int, duration: float) -> None:
        self.t0 = time.monotonic()
        self.stop_at = self.t0 + duration
        tasks = [self.submitter(n) for n in range(submitters)]
        tasks += [self.browser(n) for n in range(browsers)]
        await asyncio.gather(*tasks)


def summary(samples: list[tuple[float, float]]) -> str:
    ms = [latency for _at, latency in samples]
    return (
        f"p50 {percentile(ms, 50):.1f}  p99 {percentile(ms, 99):.1f}  "
        f"max {max(ms, default=0):.1f}  ({len(ms)} requests)"
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def wait_all_done(stack: Stack, ids: list[str], timeout: float) -> Counter[str]:
    import sqlalchemy as sa

    from webapp.extensions import db
    from webapp.models import Job

    deadline = time.monotonic() + timeout
    with stack.app.app_context():
        while True:
            rows = dict(
                db.session.execute(sa.select(Job.id, Job.status).where(Job.id.in_(ids))).all()
            )
            db.session.commit()
            statuses = Counter(rows.get(job_id, "missing") for job_id in ids)
            if set(statuses) <= {"done", "failed", "cancelled", "missing"}:
                return statuses
            if time.monotonic() > deadline:
                return statuses
            time.sleep(0.2)  # a condition poll of the database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browsers", type=int, default=200)
    parser.add_argument("--submitters", type=int, default=10)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--web-workers", type=int, default=WEB_PROCESSES)
    parser.add_argument("--threads", type=int, default=WEB_THREADS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--labels", type=int, default=60, help="labels per submitted job")
    parser.add_argument("--think", type=float, default=0.0, help="seconds on a finished job's page")
    parser.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="seconds at the start (every browser opening its page at once) shown apart",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    lots = 2000

    print(f"# bench/load.py — {machine()}")
    print(
        f"# {args.browsers} browsers polling once a second, {args.submitters} clients "
        f"submitting once a second ({args.labels} labels each), {args.think:g} s on a "
        f"finished page, {args.duration:.0f} s; gunicorn "
        f"{args.web_workers} x {args.threads} threads, {args.workers} worker processes"
    )
    with Stack() as stack:
        stack.start_redis()
        stack.init_app(lots)
        token = create_token(stack)
        stack.start_workers(args.workers)
        base = stack.start_web(args.web_workers, args.threads)
        from stack import login_cookie

        cookie = login_cookie(base)
        load = Load(base, cookie, token, lots, args.labels, args.think)
        started = time.monotonic()
        asyncio.run(load.run(args.browsers, args.submitters, args.duration))
        elapsed = time.monotonic() - started
        statuses = wait_all_done(stack, load.submitted, timeout=120)
    requests = sum(load.answers.values())
    print(
        f"requests {requests} in {elapsed:.1f} s ({requests / elapsed:.0f}/s); answers {dict(load.answers)}"
    )
    print(
        f"errors {len(load.errors)}"
        + (f": {Counter(load.errors).most_common(5)}" if load.errors else "")
    )
    for name, samples, target in (
        ("status", load.status_ms, " (target < 100)"),
        ("page", load.page_ms, ""),
        ("submit", load.submit_ms, ""),
    ):
        print(f"{name} latency ms: {summary(samples)}{target}")
        steady = [sample for sample in samples if sample[0] >= args.warmup]
        print(f"  after the first {args.warmup:g} s: {summary(steady)}{target}")
    stuck = {s: n for s, n in statuses.items() if s != "done"}
    print(
        f"jobs submitted {len(load.submitted)}; ended {dict(statuses)}; not done: {stuck or 'none'}"
    )
    print(f"# load average at the end: {machine().rsplit('load average ', 1)[1]}")


if __name__ == "__main__":
    main()
