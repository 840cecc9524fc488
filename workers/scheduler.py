"""The scheduler process: the reaper often, the schedules' tick each minute (SCHEDULES: each
period runs once however many schedulers run, webapp/schedules.py) and retention hourly, each
pass in its own app context."""

from __future__ import annotations

import logging
import signal
import time

from webapp import create_app, schedules
from webapp.db import analyze
from webapp.errors import DatabaseBusy
from webapp.jobs.reaper import expire, reap
from workers.stopflag import StopFlag

log = logging.getLogger("pressroom.scheduler")
EXPIRE_EVERY_S = 3600
TICK_EVERY_S = 60


def main() -> None:
    app = create_app()
    stop = StopFlag().install(signal.SIGTERM, signal.SIGINT)
    interval = app.config["REAPER_INTERVAL_S"]
    next_expire = next_tick = 0.0
    log.info(
        "scheduler started: reaper every %.1f s, retention every %d s", interval, EXPIRE_EVERY_S
    )
    while not stop.requested:
        with app.app_context():
            try:
                reap()
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + TICK_EVERY_S
                    schedules.tick()
                if time.monotonic() >= next_expire:
                    analyze()
                    expire()
                    next_expire = time.monotonic() + EXPIRE_EVERY_S
            except DatabaseBusy as exc:  # a held lock, a read-only file: said in one line
                log.warning("scheduler pass skipped: %s", exc)
            except Exception:  # keep going: the next pass may well succeed (db or redis back)
                log.exception("scheduler pass failed")
            finally:
                from webapp.extensions import db

                db.session.remove()
        stop.wait(interval)
    log.info("scheduler stopped")


if __name__ == "__main__":
    main()
