"""Transactions for state changes. SQLite needs BEGIN IMMEDIATE for read-then-write (DESIGN §8)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from sqlalchemy import event
from sqlalchemy.engine import Engine
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


@contextmanager
def write_txn() -> Iterator[Session]:
    """One committed write transaction that takes SQLite's write lock before its first read."""
    session = db.session()
    if session.in_transaction():
        session.commit()
    bind = session.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    with _sqlite_write_lock(bind.url.database) if sqlite else nullcontext():
        session.connection(execution_options={"sqlite_immediate": True})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
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


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn) -> None:  # type: ignore[no-untyped-def]
    if conn.dialect.name != "sqlite":
        return
    immediate = conn.get_execution_options().get("sqlite_immediate")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
