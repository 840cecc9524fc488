"""The actors the engine sends to, declared once: `workers/actors.py` binds them by these refs.

The web side never imports the actors (they live with the workers); it sends messages by these
names, and the worker declares its actors from the same refs, so a name exists in one place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from dramatiq import Message
from flask import current_app

log = logging.getLogger(__name__)

QUEUE = "pressroom"
# Chunks of big batches and bulk work wait in their own queue, drawn by a lower-priority actor:
# a worker holding a chunk message and a whole job's message takes the job first, so one
# person's small job never waits behind another's 50,000 labels.
BULK_QUEUE = "pressroom-bulk"
QUEUES = (QUEUE, BULK_QUEUE)


@dataclass(frozen=True)
class ActorRef:
    name: str
    queue: str
    priority: int = 0


RENDER = ActorRef("render_job", QUEUE)
CHUNK = ActorRef("render_chunk", BULK_QUEUE, priority=10)
DISPATCH = ActorRef("dispatch_outbox", QUEUE)
ACTORS = (RENDER, CHUNK, DISPATCH)


def send(actor: ActorRef, *args: object, delay_s: float = 0) -> bool:
    """Send a message with ids only; False (logged) when the broker cannot be reached."""
    message: Message[Any] = Message(
        queue_name=actor.queue, actor_name=actor.name, args=args, kwargs={}, options={}
    )
    try:
        current_app.extensions["pressroom.broker"].enqueue(
            message, delay=int(delay_s * 1000) or None
        )
    except Exception as exc:  # redis down, timeouts: the row is committed, the reaper re-sends
        log.warning("%s%s: send failed (%s); the reaper will send it again", actor.name, args, exc)
        return False
    return True
