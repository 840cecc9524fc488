"""Actors take ids only, are safe to run twice, and leave retries to the job engine."""

from __future__ import annotations

import dramatiq

from webapp.jobs.engine import BULK_QUEUE, QUEUE

# Dramatiq's own hard stop, above the engine's deadline (JOB_TIME_LIMIT_S, checked per label).
HARD_TIME_LIMIT_MS = 45 * 60 * 1000


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=HARD_TIME_LIMIT_MS)
def render_job(job_id: str) -> None:
    """Claim job `job_id` and render it (or one chunk of it); unclaimable means ack and return."""
    from webapp import jobs

    jobs.run(job_id)


@dramatiq.actor(queue_name=BULK_QUEUE, priority=10, max_retries=0, time_limit=HARD_TIME_LIMIT_MS)
def render_chunk(job_id: str) -> None:
    """Render one internal chunk of a big batch; whole jobs of other users go first."""
    from webapp import jobs

    jobs.run(job_id)


ALL = (render_job, render_chunk)
