"""The worker middleware: an app context per message, and Dramatiq's time limit failing the job."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import TimeLimitExceeded
from flask import current_app

from webapp import jobs
from webapp.extensions import db
from webapp.jobs.lease import claim
from webapp.jobs.runner import current_lease
from webapp.messages import Msg
from webapp.models import Job, JobStatus
from workers.middleware import AppContextMiddleware


def message(job_id: str) -> dramatiq.Message:
    return dramatiq.Message(
        queue_name="pressroom", actor_name="render_job", args=(job_id,), kwargs={}, options={}
    )


class TestAppContextMiddleware:
    def test_each_message_gets_its_own_app_context_which_is_popped_after(self, app):
        middleware = AppContextMiddleware(app)
        broker = app.extensions["pressroom.broker"]
        middleware.before_process_message(broker, message("x"))
        assert current_app._get_current_object() is app
        middleware.after_process_message(broker, message("x"))
        assert middleware.state.context is None

    def test_a_time_limit_fails_the_job_and_deletes_its_temp_file(self, app, staff, lots):
        """Given a claimed job with a temp file, when Dramatiq's TimeLimitExceeded arrives,
        then the middleware fails the job (compare-and-set) and removes the temp file."""
        job, _ = jobs.submit(staff, "potting_lot_labels", {"lot_ids": [1]})
        middleware = AppContextMiddleware(app)
        broker = app.extensions["pressroom.broker"]
        middleware.before_process_message(broker, message(job.id))
        lease = claim(job.id)
        tmp = lease.temp_path()
        tmp.write_bytes(b"%PDF-1.4 half written")
        current_lease.set(lease)
        middleware.after_process_message(broker, message(job.id), exception=TimeLimitExceeded())
        assert not tmp.exists() and current_lease.get() is None
        db.session.commit()
        row = db.session.get(Job, job.id)
        assert row.status == JobStatus.FAILED and row.artifact_id is None
        minutes = app.config["JOB_TIME_LIMIT_S"] // 60
        assert row.error == Msg("time_limit", {"minutes": minutes})
        assert row.error.english().startswith(f"Stopped after the time limit of {minutes} minutes.")
