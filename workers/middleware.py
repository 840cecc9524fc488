"""A Flask app context per message, never one for the whole process."""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware, TimeLimitExceeded
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
