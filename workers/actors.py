"""Actors take ids only, are safe to run twice, and leave retries to the job engine.

Their names and queues come from `webapp/jobs/queues.py`, the one place the web side sends by.
"""

from __future__ import annotations

import dramatiq

from webapp.jobs.queues import CHUNK, DISPATCH, RENDER

# Dramatiq's own hard stop, above the engine's deadline (JOB_TIME_LIMIT_S, checked per unit).
HARD_TIME_LIMIT_MS = 45 * 60 * 1000


@dramatiq.actor(
    actor_name=RENDER.name, queue_name=RENDER.queue, max_retries=0, time_limit=HARD_TIME_LIMIT_MS
)
def render_job(job_id: str) -> None:
    """Claim job `job_id` and render it (or split it); unclaimable means ack and return."""
    from webapp.jobs import runner

    runner.run(job_id)


@dramatiq.actor(
    actor_name=CHUNK.name,
    queue_name=CHUNK.queue,
    priority=CHUNK.priority,
    max_retries=0,
    time_limit=HARD_TIME_LIMIT_MS,
)
def render_chunk(job_id: str) -> None:
    """Render one internal chunk of a big job; whole jobs of other users go first."""
    from webapp.jobs import runner

    runner.run(job_id)


@dramatiq.actor(
    actor_name=DISPATCH.name, queue_name=DISPATCH.queue, max_retries=0, time_limit=10 * 60 * 1000
)
def dispatch_outbox(item_id: int) -> None:
    """Carry out one outbox item (a mail …) if it is still pending and due."""
    from webapp.jobs import outbox

    outbox.dispatch(item_id)


ALL = (render_job, render_chunk, dispatch_outbox)
