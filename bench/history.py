"""A submit's cost as the job table's history grows: ms per submit, × the same with no history.

    .venv/bin/python bench/history.py [--history 0,20000,100000] [--submits 300]

One app on a temporary SQLite database with the stub broker and one staff user, whose finished
jobs (`done`, each of another input) are written straight into the table: 0, 20,000, 100,000
of them. Then, for each size: the twin lookup a submit makes first (`look_up`, the owner's
shape and a document subject's shape, each for an input that has no live job) and whole
submits (`webapp.jobs.submit`, other lots each time, so each makes a new job). The baseline is
the same measurement on the empty table in the same run: a submit should cost the same after
a year of jobs as on the first day (the live-job indexes are partial: only queued and running
jobs are in them).
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
import time

from common import machine, seed_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", default="0,20000,100000")
    parser.add_argument("--submits", type=int, default=300)
    args = parser.parse_args()
    sizes = sorted({0, *(int(size) for size in args.history.split(","))})
    logging.disable(logging.INFO)

    import sqlalchemy as sa

    from webapp import create_app, jobs
    from webapp.extensions import db
    from webapp.jobs.submit import look_up
    from webapp.models import Job, new_id, utcnow

    config = {"PRESSROOM_DATA": tempfile.mkdtemp(prefix="prs-"), "SECRET_KEY": "bench"}
    app = create_app({**config, "BROKER": "stub", "METRICS_DIR": None})
    picks = random.Random(7)
    print(f"# bench/history.py — {machine()}")
    print(f"# {args.submits} submits and 2 x {args.submits} lookups per size; ms each")
    with app.app_context():
        user = seed_database(50)

        def measure(count: int) -> list[float]:
            """ms of a lookup (owner's shape, subject's shape) and of a whole submit."""
            figures = []
            for owner_id, subject in ((user.id, None), (None, "work_order:1")):
                started = time.perf_counter()
                for _ in range(count):
                    look_up(db.session(), "potting_lot_labels", owner_id, subject, "f" * 64)
                figures.append((time.perf_counter() - started) / count * 1000)
            db.session.rollback()
            started = time.perf_counter()
            for _ in range(count):
                lots = picks.sample(range(1, 51), picks.randint(1, 40))
                jobs.submit(user, "potting_lot_labels", {"lot_ids": lots})
            figures.append((time.perf_counter() - started) / count * 1000)
            return figures

        measure(20)  # first queries compiled, caches filled: not part of the empty table's figure
        written, baseline = 0, None
        for size in sizes:
            rows = [
                {
                    "id": new_id(),
                    "owner_id": user.id,
                    "kind": "potting_lot_labels",
                    "params": {},
                    "summary": {},
                    "input_hash": f"{number:064x}",
                    "status": "done",
                    "progress_total": 1,
                    "created_at": utcnow(),
                }
                for number in range(written, size)
            ]
            if rows:
                db.session.execute(sa.insert(Job), rows)
                db.session.commit()
            written = size
            figures = measure(args.submits)
            baseline = baseline or figures
            ratios = " ".join(
                f"{figure / base:5.2f}" for figure, base in zip(figures, baseline, strict=True)
            )
            print(
                f"history {size:7,d} jobs: look-up (owner) {figures[0]:6.3f}  (subject) "
                f"{figures[1]:6.3f}  submit {figures[2]:6.3f}  · × empty: {ratios}",
                flush=True,
            )


if __name__ == "__main__":
    main()
