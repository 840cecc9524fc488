"""A Flask app context per message, never one for the whole process."""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware, TimeLimitExceeded
from flask import Flask

log = logging.getLogger(__name__)


class AppContextMiddleware(Middleware):
    """Push an app context before each message; pop it and drop the DB session after."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.state = threading.local()

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        context = self.app.app_context()
        context.push()
        self.state.context = context

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
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

    after_skip_message = after_process_message

    def _time_limit(self, message: dramatiq.Message) -> None:
        """Dramatiq raised TimeLimitExceeded inside the actor: roll back, clean up, fail the job."""
        from webapp.extensions import db
        from webapp.jobs import current_lease

        db.session.rollback()
        lease = current_lease.get()
        log.error("message %s exceeded its time limit", message.message_id)
        current_lease.set(None)
        if lease is not None:
            lease.cleanup()
            lease.fail("Stopped after the time limit. Split the batch into smaller ones and try again.")
