"""Retention and reuse on PostgreSQL, where no single write lock orders them (SQLite's does):
a submit that would reuse a file retention is removing at that moment waits for the removal
and renders the document again, instead of pointing a job at a file that is gone (or failing
with a stale row)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.conftest import add_user, app_config, wait_for
from webapp import create_app, jobs
from webapp.cli import init_db
from webapp.db import serialize_on
from webapp.extensions import db
from webapp.jobs import artifacts
from webapp.models import Artifact, Job, JobStatus, User, utcnow
from webapp.nursery.demo import seed_lots

KIND = "potting_lot_labels"
PARAMS = {"lot_ids": [1, 2, 3]}


def waiting_on_a_lock(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
        )


def test_a_submit_meeting_retention_removing_its_file_renders_it_again(
    tmp_path: Path, postgres: Any
):
    app = create_app(app_config(tmp_path / "data", DATABASE_URL=postgres.database()))
    with app.app_context():
        init_db()
        user_id = add_user().id
        seed_lots(3)
        # Given a published file for exactly this input (an earlier job, cancelled since)
        first, _ = jobs.submit(db.session.get(User, user_id), KIND, PARAMS)
        jobs.cancel(first)
        tmp = tmp_path / "labels.pdf"
        tmp.write_bytes(b"%PDF-1.7 earlier labels")
        relative = artifacts.content_path(artifacts.sha256_of(tmp), ".pdf")
        artifacts.publish(tmp, relative)
        artifact = Artifact(
            input_hash=first.input_hash,
            sha256=artifacts.sha256_of(artifacts.root() / relative),
            path=relative,
            size=23,
            media_type="application/pdf",
            expires_at=utcnow() + timedelta(minutes=1),
        )
        db.session.add(artifact)
        db.session.commit()
        artifact_id = artifact.id

        # And retention in the middle of removing it (its locks held, the row deleted)
        retention = Session(db.engine)
        serialize_on(retention, artifacts.path_lock(relative))
        assert retention.scalar(
            sa.select(Artifact.id).where(Artifact.id == artifact_id).with_for_update()
        )
        retention.execute(sa.delete(Artifact).where(Artifact.id == artifact_id))

        # When the same input is submitted meanwhile
        outcome: dict[str, Any] = {}

        def submit() -> None:
            with app.app_context():
                try:
                    job, created = jobs.submit(db.session.get(User, user_id), KIND, PARAMS)
                    outcome["job"] = (job.id, job.status, job.artifact_id, created)
                except Exception as exc:  # the assertion below shows it
                    outcome["error"] = exc

        thread = threading.Thread(target=submit)
        thread.start()
        wait_for(lambda: waiting_on_a_lock(db.engine) or not thread.is_alive(), timeout=30)
        assert thread.is_alive(), f"the submit did not wait for retention: {outcome}"
        artifacts.delete(relative)
        retention.commit()
        retention.close()
        thread.join(30)

        # Then it waited, found the file gone and queued the document to be rendered again
        assert "error" not in outcome, outcome
        job_id, status, pointed_at, created = outcome["job"]
        assert created and status == JobStatus.QUEUED and pointed_at is None
        db.session.commit()
        row = db.session.get(Job, job_id)
        assert row is not None and row.artifact_id is None
        assert db.session.get(Artifact, artifact_id) is None
        db.session.remove()
        db.engine.dispose()
