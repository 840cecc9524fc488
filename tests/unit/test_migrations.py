"""Migrations keep what is in the database: a running batch's chunks survive an upgrade. Each
test runs on SQLite and on PostgreSQL (a throw-away cluster: tests/support/postgres.py)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from tests.conftest import app_config
from webapp import ROOT, create_app
from webapp.extensions import db

MIGRATIONS = str(ROOT / "webapp" / "migrations")
JOB_0001 = (
    "INSERT INTO jobs (id, owner_id, kind, params, summary, status, progress_done, "
    "progress_total, progress_step, attempts, max_attempts, created_at, chunks_total, "
    "chunks_done, parent_id, error) VALUES (:id, 1, 'potting_lot_labels', '{}', '{}', "
    ":status, 0, 2, :step, 1, 3, '2026-11-30 10:00:00', :chunks, 0, :parent, :error)"
)


class TestUpgradeFrom0001:
    def test_a_running_batch_keeps_its_chunks_and_steps_and_errors_become_codes(
        self, tmp_path: Path, database: dict[str, str]
    ):
        app = create_app(app_config(tmp_path / "data", **database))
        with app.app_context():
            # Given a database at the first schema with a batch running in two chunks
            upgrade(directory=MIGRATIONS, revision="0001")
            db.session.execute(
                sa.text(
                    "INSERT INTO users (id, email, name, password_hash, role, created_at) "
                    "VALUES (1, 'a@example.com', 'A', 'x', 'staff', '2026-11-30 10:00:00')"
                )
            )
            rows = [
                ("p", "running", "Rendering in 2 parts", 2, None, None),
                ("c1", "running", "Drawing labels", 0, "p", None),
                ("c2", "queued", "Waiting for a worker", 0, "p", None),
                ("f", "failed", "Failed", 0, None, "The disk is full."),
            ]
            for id_, status, step, chunks, parent, error in rows:
                db.session.execute(
                    sa.text(JOB_0001),
                    {
                        "id": id_,
                        "status": status,
                        "step": step,
                        "chunks": chunks,
                        "parent": parent,
                        "error": error,
                    },
                )
            db.session.commit()

            # When it is upgraded (the batch rebuilds the jobs table on SQLite)
            upgrade(directory=MIGRATIONS)

            # Then every row is still there, steps and errors as codes
            got = db.session.execute(
                sa.text(
                    "SELECT id, parent_id, step_code, error_code, error_params, claims, origin "
                    "FROM jobs ORDER BY id"
                )
            ).all()
            assert [(r.id, r.parent_id, r.step_code) for r in got] == [
                ("c1", "p", "drawing_labels"),
                ("c2", "p", "waiting"),
                ("f", None, "failed"),
                ("p", None, None),
            ]
            failed = next(r for r in got if r.id == "f")
            assert failed.error_code == "unexpected" and "The disk is full." in str(
                failed.error_params  # JSON: text on SQLite, an object on PostgreSQL
            )
            assert {r.origin for r in got} == {"user"} and {r.claims for r in got} == {0}
            db.session.remove()
            db.engine.dispose()

    def test_the_downgrade_keeps_the_rows_too(self, tmp_path: Path, database: dict[str, str]):
        app = create_app(app_config(tmp_path / "data", **database))
        with app.app_context():
            upgrade(directory=MIGRATIONS)
            db.session.execute(
                sa.text(
                    "INSERT INTO users (id, email, name, password_hash, role, created_at) "
                    "VALUES (1, 'a@example.com', 'A', 'x', 'staff', '2026-11-30 10:00:00')"
                )
            )
            for id_, parent in (("p", None), ("c1", "p")):
                db.session.execute(
                    sa.text(
                        "INSERT INTO jobs (id, owner_id, origin, kind, params, summary, status, unit, "
                        "progress_done, progress_total, attempts, max_attempts, claims, created_at, "
                        "chunks_total, chunks_done, parent_id) VALUES (:id, 1, 'user', 'k', '{}', "
                        "'{}', 'running', 'label', 0, 1, 1, 3, 1, '2026-11-30 10:00:00', 0, 0, "
                        ":parent)"
                    ),
                    {"id": id_, "parent": parent},
                )
            db.session.commit()
            downgrade(directory=MIGRATIONS, revision="0001")
            ids = db.session.execute(sa.text("SELECT id FROM jobs ORDER BY id")).scalars().all()
            assert ids == ["c1", "p"]
            db.session.remove()
            db.engine.dispose()
