"""The scheduler process: runs the reaper often and retention hourly, each in its own app context."""

from __future__ import annotations

import logging
import signal
import time

from webapp import create_app
from webapp.jobs.reaper import expire, reap
from workers.stopflag import StopFlag

log = logging.getLogger("pressroom.scheduler")
EXPIRE_EVERY_S = 3600


def main() -> None:
    app = create_app()
    stop = StopFlag().install(signal.SIGTERM, signal.SIGINT)
    interval = app.config["REAPER_INTERVAL_S"]
    next_expire = 0.0
    log.info(
        "scheduler started: reaper every %.1f s, retention every %d s", interval, EXPIRE_EVERY_S
    )
    while not stop.requested:
        with app.app_context():
            try:
                reap()
                if time.monotonic() >= next_expire:
                    expire()
                    next_expire = time.monotonic() + EXPIRE_EVERY_S
            except Exception:  # keep going: the next pass may well succeed (db or redis back)
                log.exception("scheduler pass failed")
            finally:
                from webapp.extensions import db

                db.session.remove()
        stop.wait(interval)
    log.info("scheduler stopped")


if __name__ == "__main__":
    main()
