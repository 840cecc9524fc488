"""Fault injection with real processes (issue 9, Locks with limits): a process stopped while it
holds the SQLite write lock, and a database file the web cannot write. The web answers 503 JSON
with Retry-After within the lock's limit (never a hang, never a 500), /healthz says 503, and
everything recovers by itself once the cause goes away."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from tests.conftest import wait_for
from tests.services import ROOT, Service, Stack, http_request

LOCK_TIMEOUT_S = 2.0
MARGIN_S = 15.0  # two busy cores: start-up noise, never the lock itself
# A job whose worker could not write its heartbeat meanwhile is re-queued soon after.
STACK = {"env": {"DB_LOCK_TIMEOUT_S": str(LOCK_TIMEOUT_S), "HEARTBEAT_STALE_S": "12"}, "lots": 20}

# A process of our own code that takes the write lock through write_txn, makes a write in it,
# says so, and lets go only when it reads a line (the test writes that line while it is stopped).
# PostgreSQL has no flock: the holder takes the lock that every insert of a job waits for.
HOLDER = """
import sys
import sqlalchemy as sa
from webapp import create_app
from webapp.db import write_txn

app = create_app()
with app.app_context(), write_txn() as session:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("LOCK TABLE jobs IN EXCLUSIVE MODE"))
    else:
        session.execute(sa.text("UPDATE users SET name = name"))
    print("holding", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


@contextmanager
def lock_holder(stack: Stack) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER],
        env=stack.env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "holding"
        yield process
    finally:
        with suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
        process.kill()
        process.wait(30)


def submit(stack: Stack, copies: int):
    started = time.monotonic()
    answer = stack.api(
        "POST",
        "/api/v1/jobs",
        json_body={"kind": "potting_lot_labels", "params": {"lot_ids": [1], "copies": copies}},
    )
    return answer, time.monotonic() - started


def healthz(stack: Stack):
    return http_request("GET", stack.base_url + "/healthz", timeout=30)


def test_a_stopped_lock_holder_makes_writes_503_until_it_is_continued(stack: Stack) -> None:
    before, _took = submit(stack, copies=1)
    assert before.status == 202, before.body[:500]
    with lock_holder(stack) as holder:
        os.kill(holder.pid, signal.SIGSTOP)
        read = stack.api("GET", f"/api/v1/jobs/{before.json()['id']}")
        assert read.status == 200, read.body[:500]  # a read writes nothing: no 503
        answer, took = submit(stack, copies=2)
        assert answer.status == 503, answer.body[:500]
        assert took < LOCK_TIMEOUT_S * 2 + MARGIN_S  # the lock's limit (+ SQLite's own), no hang
        assert answer.header("Retry-After") == "5"
        assert answer.header("Content-Type") == "application/json"
        error = answer.json()["error"]
        assert error["code"] == "database_busy"
        assert "locked" in error["message"] and "Try again" in error["message"]

        health = healthz(stack)
        assert health.status == 503
        assert "cannot be written" in health.json()["checks"]["database"]
        assert stack.scheduler.running  # the reaper logs and carries on

        assert holder.stdin is not None
        holder.stdin.write("go\n")
        holder.stdin.flush()
        os.kill(holder.pid, signal.SIGCONT)
        assert holder.wait(30) == 0

    answer, _took = submit(stack, copies=3)
    assert answer.status == 202, answer.body[:500]
    wait_for(lambda: healthz(stack).status == 200, 30, message="/healthz to be 200 again")
    with stack.context():
        stack.wait_status(answer.json()["id"], "done", timeout=120)  # the workers carried on
    assert stack.scheduler.running and stack.worker.running


def test_a_killed_lock_holder_frees_the_lock_at_once(stack: Stack) -> None:
    with lock_holder(stack) as holder:
        os.kill(holder.pid, signal.SIGSTOP)
        assert submit(stack, copies=4)[0].status == 503
        holder.kill()
        holder.wait(30)
        answer, _took = submit(stack, copies=4)
        assert answer.status == 202, answer.body[:500]


def test_a_running_job_outlives_a_stopped_lock_holder(stack: Stack, app_ctx) -> None:
    """Its worker's heartbeat (the paced job writes one every 50 ms at its gate) meets the lock
    for as long as the holder is stopped; the worker process carries on, and once the holder
    is gone the job is finished by the engine without anybody's help."""
    job = stack.submit_paced(3)
    stack.wait_steps(job.id, 0)
    with lock_holder(stack) as holder:
        os.kill(holder.pid, signal.SIGSTOP)
        wait_for(
            lambda: (
                "database_busy" in stack.worker.output()
                or "cannot be written now" in stack.worker.output()
            ),
            60,
            message="the worker to meet the held lock",
        )
        assert stack.worker.running
        holder.kill()
        holder.wait(30)
    stack.allow(job, 3)
    done = stack.wait_status(job.id, "done", timeout=120)
    assert done.progress_done == 3
    assert stack.worker.running and stack.scheduler.running


@contextmanager
def read_only_database(stack: Stack) -> Iterator[list[str]]:
    """SQLite: the file 0444 and the web run without root's override of file permissions (as
    root; CI is); PostgreSQL: new sessions of the database are read-only. Yields the prefix of
    the web's command line."""
    if stack.database_url:
        import psycopg

        url = stack.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, autocommit=True) as pg:
            name = pg.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
            pg.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        try:
            yield []
        finally:
            with psycopg.connect(url, autocommit=True) as pg:
                pg.execute("SET default_transaction_read_only = off")
                pg.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        return
    db_file = stack.data / "pressroom.db"
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) drops root's override of file permissions"
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    mode = db_file.stat().st_mode
    db_file.chmod(0o444)
    try:
        yield prefix
    finally:
        db_file.chmod(mode)


@contextmanager
def read_only_web(stack: Stack) -> Iterator[None]:
    """The web, restarted on a database it may not write; afterwards the normal web again."""
    stack.web.stop()
    try:
        with read_only_database(stack) as prefix:
            web = Service(
                "web-read-only", [*prefix, *stack.web.argv], stack.env, stack.logs / "ro.log"
            )
            web.start()

            def answering() -> bool:
                assert web.running, web.output()[-3000:]
                try:
                    healthz(stack)
                    return True
                except OSError:
                    return False

            try:
                wait_for(answering, 60, interval=0.1, message="the read-only web to answer")
                yield
            finally:
                web.stop()
    finally:
        stack.start_web()


def test_a_read_only_database_is_503_not_500(stack: Stack) -> None:
    before, _took = submit(stack, copies=6)
    assert before.status == 202, before.body[:500]
    with read_only_web(stack):
        # Reads keep working: a job's status, the list of jobs, a page.
        read = stack.api("GET", f"/api/v1/jobs/{before.json()['id']}")
        assert read.status == 200, read.body[:500]
        assert stack.api("GET", "/api/v1/jobs").status == 200
        answer, took = submit(stack, copies=5)
        assert answer.status == 503, answer.body[:500]
        assert took < LOCK_TIMEOUT_S + MARGIN_S
        assert answer.header("Retry-After") == "5"
        assert answer.json()["error"]["code"] == "database_busy"
        health = healthz(stack)
        assert health.status == 503
        assert "read-only" in health.json()["checks"]["database"], health.body
    answer, _took = submit(stack, copies=5)
    assert answer.status == 202, answer.body[:500]


def test_a_long_url_is_a_json_414_from_the_real_web(stack: Stack) -> None:
    answer = stack.api("GET", "/api/v1/jobs?q=" + "x" * 10_000)
    assert answer.status == 414
    assert answer.header("Content-Type") == "application/json"
    assert answer.json()["error"]["code"] == "request_uri_too_long"
