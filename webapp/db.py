"""Write transactions for every module. SQLite needs BEGIN IMMEDIATE for read-then-write (DESIGN §8).

`init_app` installs the per-connection SQLite pragmas on the app's own engine (never on every
`Engine` at import time) and disposes of the pool in a forked child.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session

from webapp.extensions import db

# Writers queue on these locks rather than in SQLite's busy handler, which sleeps in growing
# steps (up to 100 ms) and made the long tail of submit latency (docs/benchmarks.md): threads of
# a process on a mutex, processes on an flock of a file beside the database (the kernel wakes
# the next one the moment it is released, and releases it if its holder dies).
_THREAD_LOCK = threading.RLock()
_lock_files: dict[str, int] = {}


def _lock_fd(database: str) -> int:
    fd = _lock_files.get(database)
    if fd is None:
        fd = _lock_files[database] = os.open(f"{database}.writelock", os.O_RDWR | os.O_CREAT, 0o600)
    return fd


def _forget_lock_files() -> None:
    _lock_files.clear()  # a forked child opens its own (flock is per open file)


os.register_at_fork(after_in_child=_forget_lock_files)


@contextmanager
def _sqlite_write_lock(database: str | None) -> Iterator[None]:
    with _THREAD_LOCK:
        if not database or database == ":memory:":
            yield
            return
        fd = _lock_fd(database)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


_AFTER_COMMIT = "pressroom.after_commit"


def after_commit(session: Session, action: Callable[[], object]) -> None:
    """Run `action` once the write transaction `session` is in has committed (dropped on a
    rollback), after the write lock is released: e.g. send a job's message to the broker."""
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


@contextmanager
def write_txn() -> Iterator[Session]:
    """One committed write transaction that takes SQLite's write lock before its first read."""
    session = db.session()
    if session.in_transaction():
        session.commit()
    bind = session.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    with _sqlite_write_lock(bind.engine.url.database) if sqlite else nullcontext():
        session.connection(execution_options={"sqlite_immediate": True})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            session.info.pop(_AFTER_COMMIT, None)
            raise
    for action in session.info.pop(_AFTER_COMMIT, []):
        action()


def init_app(app: Flask) -> None:
    """Pragmas and BEGIN IMMEDIATE on this app's engine; a forked child opens its own connections."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    # SQLAlchemy emits BEGIN itself (below); pysqlite's own implicit BEGIN would hide it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    immediate = conn.get_execution_options().get("sqlite_immediate")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def analyze() -> None:
    """Refresh the query planner's statistics (SQLite keeps none until asked: without them it
    reads the monitoring page's day of jobs through the wrong index, ~20× slower). The
    scheduler runs this at start and hourly; PostgreSQL's autovacuum does it by itself."""
    if db.session().get_bind().dialect.name != "sqlite":
        return
    with write_txn() as session:
        session.execute(sa.text("ANALYZE"))
