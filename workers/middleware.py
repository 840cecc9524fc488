"""A Flask app context per message (never one for the whole process), the workers' own
heartbeat, and paused queues."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware, SkipMessage, TimeLimitExceeded
from flask import Flask

log = logging.getLogger(__name__)


class AppContextMiddleware(Middleware):
    """Push an app context before each message; pop it and drop the DB session after."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.state = threading.local()

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        context = self.app.app_context()
        context.push()
        self.state.context = context

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        context = getattr(self.state, "context", None)
        if context is None:
            return
        try:
            if isinstance(exception, TimeLimitExceeded):
                self._time_limit(message)
        finally:
            from webapp.extensions import db

            db.session.remove()
            context.pop()
            self.state.context = None

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self.after_process_message(broker, message)

    def _time_limit(self, message: MessageProxy) -> None:
        """Dramatiq raised TimeLimitExceeded inside the actor: roll back, clean up, fail the job."""
        from webapp.extensions import db
        from webapp.jobs.runner import current_lease
        from webapp.messages import Msg

        db.session.rollback()
        lease = current_lease.get()
        log.error("message %s exceeded its time limit", message.message_id)
        current_lease.set(None)
        if lease is not None:
            lease.cleanup()
            minutes = self.app.config["JOB_TIME_LIMIT_S"] // 60
            lease.fail(Msg("time_limit", {"minutes": minutes}))


class WorkerHeartbeat(Middleware):
    """Each worker process says it is alive every few seconds (`pressroom:workers`, a sorted set
    by time) for the monitoring page and /metrics; it leaves the set when it stops. (Dramatiq's
    own heartbeat set also holds the web processes' brokers, which only send.)"""

    EVERY_S = 10.0

    def __init__(self) -> None:
        self.stop = threading.Event()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        client = getattr(broker, "client", None)
        if client is None:
            return
        from webapp.jobs.lease import worker_id

        me = worker_id()

        def beat() -> None:
            while not self.stop.is_set():
                try:
                    client.zadd("pressroom:workers", {me: time.time()})
                except Exception as exc:  # Redis down: the next beat tries again
                    log.debug("worker heartbeat failed: %s", exc)
                self.stop.wait(self.EVERY_S)
            try:
                client.zrem("pressroom:workers", me)
            except Exception:
                pass

        threading.Thread(target=beat, name="pressroom-heartbeat", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.stop.set()


class PausedQueues(Middleware):
    """An admin paused a queue (`pressroom:paused`): its messages wait (sent again in a few
    seconds) instead of running; the jobs stay queued and resume when the queue does."""

    DELAY_MS = 3000

    def _paused(self, broker: dramatiq.Broker, queue: str) -> bool:
        """Asked of Redis for every message (~0.1 ms): a pause holds from the next message on."""
        client = getattr(broker, "client", None)
        if client is None:
            return False
        try:
            return bool(client.sismember("pressroom:paused", queue))
        except Exception:  # Redis trouble: the message itself came from Redis, so run it
            return False

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        queue = message.queue_name.removesuffix(".DQ")
        if not self._paused(broker, queue):
            return
        later: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=queue,
            actor_name=message.actor_name,
            args=message.args,
            kwargs=message.kwargs,
            options={},
        )
        broker.enqueue(later, delay=self.DELAY_MS)
        log.info("queue %s is paused: %s%s waits", queue, message.actor_name, tuple(message.args))
        raise SkipMessage(f"queue {queue} is paused")
