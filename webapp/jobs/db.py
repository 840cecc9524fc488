"""Transactions for state changes. SQLite needs BEGIN IMMEDIATE for read-then-write (DESIGN §8)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from webapp.extensions import db

# Threads of one process queue here rather than in SQLite's busy handler, which sleeps in
# growing steps (up to 100 ms) and made the long tail of submit latency (docs/benchmarks.md).
_WRITE_LOCK = threading.RLock()


@contextmanager
def write_txn() -> Iterator[Session]:
    """One committed write transaction that takes SQLite's write lock before its first read."""
    session = db.session()
    if session.in_transaction():
        session.commit()
    sqlite = session.get_bind().dialect.name == "sqlite"
    with _WRITE_LOCK if sqlite else nullcontext():
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
