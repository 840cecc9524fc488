"""Whether anybody is watching a job: each status read marks it seen for READY_MAIL_IDLE_S.

The mark lives in Redis with an expiry (no database write on the status path, shared by every
web process); with the stub broker of unit tests, in this process. A job that ends after its
page went unpolled that long mails its owner a link (hooks.py), one that was watched does not.

A page polls every second, but a web process writes the mark again only once it is a sixth of
READY_MAIL_IDLE_S old, with that sixth added to its expiry: the mark outlives the last poll by
READY_MAIL_IDLE_S at least (a watched job never mails) and by a sixth more at most, and five
polls in six make no Redis round trip (which cost a poll more than rendering its fragment).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from dramatiq.brokers.stub import StubBroker
from flask import current_app

log = logging.getLogger(__name__)

_local: dict[str, float] = {}  # stub broker: job id → when the mark expires (monotonic)
_written: dict[str, float] = {}  # job id → when this process last wrote its mark (monotonic)
_WRITTEN_KEPT = 10_000  # entries before the old ones are dropped


def _client() -> Any:
    """Redis with a short timeout: `watched` runs inside a finishing job's write transaction,
    which must never wait seconds for a Redis that is down."""
    client = current_app.extensions.get("pressroom.watch")
    if client is None:
        import redis

        client = redis.Redis.from_url(
            current_app.config["REDIS_URL"], socket_timeout=0.25, socket_connect_timeout=0.25
        )
        current_app.extensions["pressroom.watch"] = client
    return client


def _key(job_id: str) -> str:
    return f"pressroom:seen:{job_id}"


def seen(job_id: str) -> None:
    """Somebody looked at the job just now (a status poll, the job page, the API)."""
    ttl = current_app.config["READY_MAIL_IDLE_S"]
    broker = current_app.extensions["pressroom.broker"]
    if isinstance(broker, StubBroker):
        _local[job_id] = time.monotonic() + ttl
        return
    now, every = time.monotonic(), ttl / 6
    if now - _written.get(job_id, -math.inf) < every:
        return
    try:
        _client().set(_key(job_id), 1, px=max(1, int((ttl + every) * 1000)))
    except Exception as exc:  # a status read never fails for this
        log.debug("seen(%s) not recorded: %s", job_id, exc)
        return
    _written[job_id] = now
    if len(_written) > _WRITTEN_KEPT:
        for stale in [key for key, at in list(_written.items()) if now - at >= every]:
            _written.pop(stale, None)


def watched(job_id: str) -> bool:
    """Was the job looked at within READY_MAIL_IDLE_S? (Unknown counts as watched: no mail.)"""
    broker = current_app.extensions["pressroom.broker"]
    if isinstance(broker, StubBroker):
        return _local.get(job_id, 0.0) > time.monotonic()
    try:
        return bool(_client().exists(_key(job_id)))
    except Exception as exc:
        log.warning("watched(%s) unknown (%s): no ready mail", job_id, exc)
        return True
