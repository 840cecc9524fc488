"""The SQLite write lock has a limit and a holder it names; a database that cannot be written
answers 503 + Retry-After (JSON under /api/, a page, an htmx fragment), never a hang or a 500;
/healthz says so. The holder here is another open file of the lock in this process (flock is per
open file, exactly as for another process); tests/integration/test_db_locks.py stops a real one."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from tests.conftest import add_user
from webapp.auth import create_token
from webapp.db import read_holder, unavailable_reason, write_problem, write_txn
from webapp.errors import DatabaseBusy, TransientError
from webapp.extensions import db
from webapp.models import Job

TIMEOUT = 0.3


def database_file(app) -> Path:
    return Path(app.config["PRESSROOM_DATA"]) / "pressroom.db"


@contextmanager
def lock_held(app, pid: int = 4242, what: str = "helper") -> Iterator[None]:
    """Hold the write lock as another holder would, with its record in the lock file."""
    fd = os.open(f"{database_file(app)}.writelock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        record = {"pid": pid, "host": os.uname().nodename, "since": time.time(), "what": what}
        os.pwrite(fd, json.dumps(record).encode().ljust(255) + b"\n", 0)
        yield
    finally:
        os.close(fd)  # releases the flock


@pytest.fixture
def busy_app(make_app):
    app = make_app(DB_LOCK_TIMEOUT_S=TIMEOUT)
    with app.app_context():
        user = add_user()
        app.config["TEST_TOKEN"] = create_token(user)
        from webapp.nursery.demo import seed_lots

        seed_lots(5)
    return app


def submit(client, app):
    return client.post(
        "/api/v1/jobs",
        json={"kind": "potting_lot_labels", "params": {"lot_ids": [1, 2]}},
        headers={"Authorization": f"Bearer {app.config['TEST_TOKEN']}"},
    )


class TestTheLock:
    def test_a_held_lock_raises_database_busy_naming_its_holder_within_the_limit(self, busy_app):
        with busy_app.app_context(), lock_held(busy_app, pid=1234, what="worker"):
            started = time.monotonic()
            with pytest.raises(DatabaseBusy) as caught, write_txn():
                pass
            waited = time.monotonic() - started
        assert TIMEOUT <= waited < TIMEOUT + 10  # the limit, not a hang
        assert caught.value.reason == "locked"
        assert "pid 1234 (worker) since " in caught.value.msg.english()
        assert isinstance(caught.value, TransientError)  # a worker tries again later

    def test_the_lock_is_taken_again_once_released_and_records_its_holder(self, busy_app):
        with busy_app.app_context():
            with lock_held(busy_app), pytest.raises(DatabaseBusy), write_txn():
                pass
            with write_txn() as session:
                session.execute(sa.text("UPDATE users SET name = 'Changed'"))
            holder = read_holder(str(database_file(busy_app)))
            assert holder is not None and holder.pid == os.getpid()
            # "<process role>, thread <name>" (the role is "test" under pytest, "python" in a
            # pytest-xdist worker)
            assert holder.what.endswith(f", thread {threading.current_thread().name}")
            assert db.session.scalar(sa.text("SELECT name FROM users")) == "Changed"

    def test_a_write_txn_inside_another_of_the_same_thread_does_not_wait_for_itself(self, busy_app):
        with busy_app.app_context(), write_txn():
            with write_txn() as inner:  # (the thread lock is not re-entrant: this is counted)
                inner.execute(sa.text("UPDATE users SET name = 'Inner'"))
            assert db.session.scalar(sa.text("SELECT name FROM users")) == "Inner"

    def test_sqlites_busy_timeout_follows_the_limit(self, busy_app):
        with busy_app.app_context():
            assert db.session.scalar(sa.text("PRAGMA busy_timeout")) == int(TIMEOUT * 1000)


class TestAnswers:
    def test_a_submit_while_the_lock_is_held_is_503_json_with_retry_after(self, busy_app):
        client = busy_app.test_client()
        with lock_held(busy_app, pid=1234, what="worker"):
            started = time.monotonic()
            response = submit(client, busy_app)
            assert time.monotonic() - started < TIMEOUT * 2 + 10  # the limits, not a hang
        assert response.status_code == 503
        assert response.is_json
        assert response.headers["Retry-After"] == "5"
        error = response.get_json()["error"]
        assert error["code"] == "database_busy"
        assert "pid 1234 (worker)" in error["message"] and "Try again" in error["message"]
        with busy_app.app_context():
            assert db.session.scalar(sa.select(sa.func.count(Job.id))) == 0
        assert submit(client, busy_app).status_code == 202  # released: it works again

    def test_a_form_while_the_lock_is_held_is_a_503_page_and_an_htmx_fragment(self, busy_app):
        client = busy_app.test_client()
        client.post("/login", data={"email": "staff@example.com", "password": "pw-staff"})
        with lock_held(busy_app):
            page = client.post("/nursery/potting-lots/print", data={"copies": "1"})
            fragment = client.post(
                "/nursery/potting-lots/print", data={"copies": "1"}, headers={"HX-Request": "true"}
            )
        assert page.status_code == 503 and page.headers["Retry-After"] == "5"
        html = page.get_data(as_text=True)
        assert "<html" in html.lower() and "Try again in a few seconds" in html
        assert fragment.status_code == 503 and fragment.headers["Retry-After"] == "5"
        text = fragment.get_data(as_text=True)
        assert "<html" not in text.lower() and "Try again in a few seconds" in text

    def test_healthz_is_503_naming_the_holder_and_200_once_released(self, busy_app):
        client = busy_app.test_client()
        with lock_held(busy_app, pid=1234, what="worker"):
            response = client.get("/healthz")
        assert response.status_code == 503
        assert "locked by pid 1234 (worker)" in response.get_json()["checks"]["database"]
        assert client.get("/healthz").status_code == 200

    def test_a_read_only_database_is_503_not_500_and_healthz_says_so(self, busy_app):
        # SQLite's query_only refuses writes with SQLITE_READONLY, as a read-only file does
        # (chmod does not stop root, who runs CI; the integration test uses a real one).
        with busy_app.app_context():
            db.engine.dispose()
            event.listen(db.engine, "connect", read_only)
        client = busy_app.test_client()
        try:
            response = submit(client, busy_app)
            assert response.status_code == 503, response.get_data(as_text=True)
            assert response.headers["Retry-After"] == "5"
            assert response.get_json()["error"]["code"] == "database_busy"
        finally:
            with busy_app.app_context():
                event.remove(db.engine, "connect", read_only)
                db.engine.dispose()
        assert submit(client, busy_app).status_code == 202

    def test_healthz_reports_a_read_only_file(self, busy_app, monkeypatch):
        path = database_file(busy_app)
        with busy_app.app_context():
            # The probe's own connection, opened read-only as a file without write permission is.
            real_connect = sqlite3.connect

            def read_only_connect(target, *args, **kwargs):
                return real_connect(f"file:{path}?mode=ro", *args, **{**kwargs, "uri": True})

            monkeypatch.setattr(sqlite3, "connect", read_only_connect)
            assert write_problem(timeout=0.2) == "the database is read-only"


def read_only(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA query_only=ON")


class TestClassification:
    def test_errors_that_mean_cannot_write_now(self, tmp_path):
        path = tmp_path / "x.db"
        sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        with pytest.raises(sqlite3.Error) as caught:
            conn.execute("INSERT INTO t VALUES (1)")
        assert unavailable_reason(caught.value) == "readonly"
        wrapped = sa.exc.OperationalError(
            "INSERT", {}, sqlite3.OperationalError("database is locked")
        )
        assert unavailable_reason(wrapped) == "locked"
        io = sqlite3.OperationalError("disk I/O error")
        assert unavailable_reason(io) == "io"
        assert unavailable_reason(DatabaseBusy("pid 1")) == "locked"

    def test_postgresql_errors_by_their_sqlstate(self):
        import psycopg

        def wrapped(error: Exception) -> sa.exc.OperationalError:
            return sa.exc.OperationalError("UPDATE", {}, error)

        assert unavailable_reason(wrapped(psycopg.errors.LockNotAvailable("x"))) == "locked"
        assert unavailable_reason(wrapped(psycopg.errors.ReadOnlySqlTransaction("x"))) == "readonly"
        assert unavailable_reason(wrapped(psycopg.errors.DiskFull("x"))) == "io"
        assert unavailable_reason(wrapped(psycopg.OperationalError("refused"))) == "unavailable"
        assert unavailable_reason(wrapped(psycopg.errors.UndefinedColumn("x"))) is None

    def test_other_errors_are_not_503(self):
        assert unavailable_reason(sqlite3.OperationalError("no such column: x")) is None
        assert unavailable_reason(ValueError("database is locked")) is None
        integrity = sa.exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE"))
        assert unavailable_reason(integrity) is None
