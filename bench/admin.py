"""Admin figures: regeneration throughput on 1 and 2 worker processes, a staff job's latency
in the middle of a regeneration, and /admin and /metrics with 100,000 jobs in the table.

    .venv/bin/python bench/admin.py [--documents 5000] [--workers 1,2] [--jobs 100000]

A real stack (embedded redis-server, Dramatiq workers, gunicorn). The regeneration is forced
(every reception label made again), so each document is real work. Throughput is documents per
second from the bulk job's submit to its report; the ratio against 1 process is the scaling
(DESIGN §6: ≥ 0.8 × N). The staff job (a 3-label print) is submitted once a third of the
documents are done; its latency is submit → done. Then 100,000 finished jobs (a week of them)
are inserted, the planner's statistics refreshed as the scheduler does at start and hourly,
and /admin and My jobs (an admin's session owning them all) and /metrics (an admin's token)
are each asked 20 times.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import random
import statistics
import time
from datetime import timedelta
from urllib.parse import urlsplit

from common import STAFF_EMAIL, machine
from stack import Stack, login_cookie


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def get(base: str, path: str, headers: dict[str, str], n: int) -> list[float]:
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    out = []
    try:
        for _ in range(n):
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"{path}: HTTP {answer.status}")
            out.append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
    return out


def wait(stack: Stack, job_id: str, timeout: float = 1800) -> dict:
    import sqlalchemy as sa

    from webapp.extensions import db
    from webapp.models import Job

    deadline = time.monotonic() + timeout
    with stack.app.app_context():
        while True:
            row = db.session.execute(
                sa.select(
                    Job.status,
                    Job.progress_done,
                    Job.progress_total,
                    Job.finished_at,
                    Job.created_at,
                ).where(Job.id == job_id)
            ).one()
            db.session.commit()
            if row.status in ("done", "failed", "cancelled"):
                return dict(row._mapping)
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} still {row.status}")
            time.sleep(0.02)  # poll interval of a condition wait


def run_regeneration(args: argparse.Namespace, processes: int) -> dict:
    import sqlalchemy as sa

    from webapp import jobs
    from webapp.db import write_txn
    from webapp.extensions import db
    from webapp.lab.demo import seed_lab
    from webapp.lab.service import queue_documents
    from webapp.models import Job, Role, User

    with Stack() as stack:
        stack.start_redis()
        app = stack.init_app(50)
        with app.app_context():
            ids = seed_lab(args.documents)
            with write_txn() as session:
                queue_documents(session, ids)
                admin = User(email="admin@example.com", role=Role.ADMIN, name="Admin")
                admin.set_password("admin")
                session.add(admin)
        stack.start_workers(processes)
        with app.app_context():  # the labels of reception, made first
            while db.session.scalar(
                sa.select(sa.func.count(Job.id)).where(Job.status.in_(("queued", "running")))
            ):
                db.session.commit()
                time.sleep(0.1)
            admin = db.session.scalars(sa.select(User).filter_by(email="admin@example.com")).one()
            started = time.perf_counter()
            regen, _ = jobs.submit(
                admin, "regenerate", {"kind": "reception_label", "scope": "all", "force": True}
            )
            regen_id = regen.id
            staff = db.session.scalars(sa.select(User).filter_by(email=STAFF_EMAIL)).one()
            while True:  # a third of the documents done: a staff member prints three labels
                done = (
                    db.session.scalar(
                        sa.select(sa.func.count(Job.id)).where(
                            Job.batch_id == regen_id, Job.status == "done"
                        )
                    )
                    or 0
                )
                db.session.commit()
                if done >= args.documents // 3:
                    break
                time.sleep(0.02)
            lots = random.Random(processes).sample(range(1, 51), 3)
            staff_started = time.perf_counter()
            staff_job, _ = jobs.submit(staff, "potting_lot_labels", {"lot_ids": lots})
            staff_id = staff_job.id
        wait(stack, staff_id)
        staff_s = time.perf_counter() - staff_started
        wait(stack, regen_id)
        wall = time.perf_counter() - started
        return {
            "processes": processes,
            "wall": wall,
            "rate": args.documents / wall,
            "staff_s": staff_s,
        }


def run_tables(args: argparse.Namespace) -> tuple[list[float], list[float], list[float]]:
    import sqlalchemy as sa

    from webapp.auth import create_token
    from webapp.extensions import db
    from webapp.models import Job, Role, User, utcnow

    with Stack() as stack:
        stack.start_redis()
        app = stack.init_app(0)
        with app.app_context():
            admin = User(email="admin@example.com", role=Role.ADMIN, name="Admin")
            admin.set_password("admin")
            db.session.add(admin)
            db.session.commit()
            owner = admin.id
            now = utcnow()
            kinds = [
                "potting_lot_labels",
                "reception_label",
                "work_order",
                "report_final",
                "potting_lots_csv",
            ]
            rng = random.Random(1)
            rows = []
            for i in range(args.jobs):
                finished = now - timedelta(seconds=rng.randint(0, 7 * 86400))
                status = "failed" if rng.random() < 0.01 else "done"
                rows.append(
                    {
                        "id": f"b{i:011d}",
                        "owner_id": owner,
                        "origin": "user",
                        "kind": kinds[i % len(kinds)],
                        "params": {},
                        "summary": {},
                        "status": status,
                        "unit": "label",
                        "progress_done": 1,
                        "progress_total": 1,
                        "attempts": 1,
                        "max_attempts": 3,
                        "claims": 1,
                        "chunks_total": 0,
                        "chunks_done": 0,
                        "input_hash": f"h{i}",
                        "created_at": finished - timedelta(seconds=2),
                        "started_at": finished - timedelta(seconds=rng.uniform(0.05, 3)),
                        "finished_at": finished,
                    }
                )
            for start in range(0, len(rows), 5000):
                db.session.execute(sa.insert(Job), rows[start : start + 5000])
            db.session.commit()
            from webapp.db import analyze

            analyze()  # what the scheduler does at its start and hourly
            token = create_token(admin)
        base = stack.start_web(2, 4)
        cookie = {"Cookie": login_cookie(base, "admin@example.com", "admin")}
        get(base, "/admin", cookie, 3)  # warm
        admin_ms = get(base, "/admin", cookie, 20)
        metrics_ms = get(base, "/metrics", {"Authorization": f"Bearer {token}"}, 20)
        mine_ms = get(base, "/jobs", cookie, 20)  # My jobs: the admin owns all 100,000
        return admin_ms, metrics_ms, mine_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=5000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--skip-regeneration", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"# bench/admin.py — {machine()}")
    if not args.skip_regeneration:
        results = [run_regeneration(args, int(n)) for n in args.workers.split(",")]
        base = results[0]["rate"]
        for r in results:
            print(
                f"regenerate {args.documents} reception labels (forced) on {r['processes']} worker processes: "
                f"{r['wall']:.1f} s, {r['rate']:.0f} documents/s ({r['rate'] / base:.2f}× the 1-process rate; "
                f"target ≥ {0.8 * r['processes']:.1f}×); a staff job in the middle: {r['staff_s']:.2f} s (target < 3 s)"
            )
    admin_ms, metrics_ms, mine_ms = run_tables(args)
    for name, ms in (("/admin", admin_ms), ("/metrics", metrics_ms), ("/jobs (My jobs)", mine_ms)):
        print(
            f"{name} with {args.jobs:,} jobs: p50 {percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms, "
            f"mean {statistics.fmean(ms):.0f} ms (target < 100 ms)"
        )


if __name__ == "__main__":
    main()
