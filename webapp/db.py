"""Write transactions for every module. SQLite needs BEGIN IMMEDIATE for read-then-write (DESIGN §8).

`init_app` installs the per-connection SQLite pragmas on the app's own engine (never on every
`Engine` at import time) and disposes of the pool in a forked child.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from webapp.errors import DatabaseBusy, describe_unavailable
from webapp.extensions import db

# Writers queue on these locks rather than in SQLite's busy handler, which sleeps in growing
# steps (up to 100 ms) and made the long tail of submit latency (docs/benchmarks.md): threads of
# a process on a mutex, processes on an flock of a file beside the database (released by the
# kernel if its holder dies). Both are taken with a limit (DB_LOCK_TIMEOUT_S): a holder that is
# stopped (SIGSTOP, a debugger, a swapped-out VM) makes writes answer DatabaseBusy (503) for as
# long as it is stopped, never hang. The flock is polled (LOCK_NB, steps of 0.2 → 2 ms): a
# blocking flock cannot be given a timeout in a thread. Its holder writes who it is into the
# lock file, so the error can name it.
DEFAULT_LOCK_TIMEOUT_S = 5.0
_POLL_FIRST_S = 0.0002
_POLL_MAX_S = 0.002
_RECORD_BYTES = 256  # the holder record, padded: overwritten in place, never truncated
_THREAD_LOCK = threading.Lock()
_thread_holder: tuple[str, float] | None = None  # (thread name, since) while a thread holds it
_depth = threading.local()  # a write_txn inside a write_txn of the same thread holds it already
_lock_files: dict[str, int] = {}


def _lock_fd(database: str) -> int:
    fd = _lock_files.get(database)
    if fd is None:
        fd = _lock_files[database] = os.open(f"{database}.writelock", os.O_RDWR | os.O_CREAT, 0o600)
    return fd


def _after_fork_in_child() -> None:
    global _THREAD_LOCK, _thread_holder
    _lock_files.clear()  # a forked child opens its own (flock is per open file)
    _THREAD_LOCK = threading.Lock()  # (a thread of the parent may have held it at the fork)
    _thread_holder = None
    _depth.__dict__.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def process_role() -> str:
    """What this process is, for the lock's holder record: web, worker, scheduler …"""
    path = sys.argv[0] if sys.argv else ""
    for needle, role in (
        ("gunicorn", "web"),
        ("dramatiq", "worker"),
        ("scheduler", "scheduler"),
        ("pytest", "test"),
    ):
        if needle in path:
            return role
    name = os.path.basename(path)
    return name if name and name != "-c" else "python"


@dataclass(frozen=True)
class Holder:
    """Who holds (or last took) the write lock, as it wrote itself into the lock file."""

    pid: int
    host: str
    since: float  # time.time()
    what: str

    def describe(self) -> str:
        when = datetime.fromtimestamp(self.since, UTC).strftime("%H:%M:%S UTC")
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"pid {self.pid} ({self.what}{where}) since {when}"


def _write_holder(fd: int) -> None:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": round(time.time(), 3),
        "what": f"{process_role()}, thread {threading.current_thread().name}",
    }
    data = json.dumps(record).encode()[: _RECORD_BYTES - 1].ljust(_RECORD_BYTES - 1) + b"\n"
    try:
        os.pwrite(fd, data, 0)
    except OSError:
        pass  # the record only helps an error message; a write never fails for it


def read_holder(database: str) -> Holder | None:
    """The write lock's latest holder (None: never taken, or unreadable)."""
    try:
        with open(f"{database}.writelock", "rb") as fh:
            record = json.loads(fh.read(_RECORD_BYTES))
        return Holder(
            int(record["pid"]), str(record["host"]), float(record["since"]), str(record["what"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _flock(fd: int, deadline: float) -> bool:
    """LOCK_EX on `fd` before `deadline` (time.monotonic()); False when it passed."""
    delay = _POLL_FIRST_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, _POLL_MAX_S)


def lock_timeout() -> float:
    if has_app_context():
        return float(current_app.config.get("DB_LOCK_TIMEOUT_S", DEFAULT_LOCK_TIMEOUT_S))
    return DEFAULT_LOCK_TIMEOUT_S


@contextmanager
def _sqlite_write_lock(database: str | None, timeout: float | None = None) -> Iterator[None]:
    """This process's thread lock, then the flock shared with the other processes, each within
    `timeout` seconds (DB_LOCK_TIMEOUT_S); DatabaseBusy names the holder when one is not had."""
    global _thread_holder
    if getattr(_depth, "n", 0):  # this thread holds both already
        _depth.n += 1
        try:
            yield
        finally:
            _depth.n -= 1
        return
    timeout = lock_timeout() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    if not _THREAD_LOCK.acquire(timeout=max(timeout, 0.0)):
        holder = _thread_holder
        who = f"pid {os.getpid()} ({process_role()}, thread {holder[0]})" if holder else None
        raise DatabaseBusy(who)
    try:
        _thread_holder = (threading.current_thread().name, time.time())
        _depth.n = 1
        if not database or database == ":memory:":
            yield
            return
        fd = _lock_fd(database)
        if not _flock(fd, deadline):
            holder_record = read_holder(database)
            raise DatabaseBusy(holder_record.describe() if holder_record else None)
        try:
            _write_holder(fd)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        _depth.n = 0
        _thread_holder = None
        _THREAD_LOCK.release()


# -- which database errors mean "cannot be written now" (503), by dialect ------------------------

# SQLite's extended error names (Python 3.11: sqlite_errorname) and, before those, the messages.
_SQLITE_NAMES = {
    "SQLITE_BUSY": "locked",
    "SQLITE_LOCKED": "locked",
    "SQLITE_READONLY": "readonly",
    "SQLITE_IOERR": "io",
    "SQLITE_FULL": "io",
    "SQLITE_CANTOPEN": "unavailable",
}
_SQLITE_MESSAGES = {
    "database is locked": "locked",
    "database table is locked": "locked",
    "readonly database": "readonly",
    "disk i/o error": "io",
    "database or disk is full": "io",
    "unable to open database file": "unavailable",
}
# PostgreSQL's SQLSTATEs (psycopg: `sqlstate`; psycopg2: `pgcode`); class 08 is the connection.
_PG_STATES = {
    "55P03": "locked",  # lock_not_available (lock_timeout)
    "57014": "locked",  # query_canceled (statement_timeout)
    "40P01": "locked",  # deadlock_detected
    "25006": "readonly",  # read_only_sql_transaction (a standby, default_transaction_read_only)
    "53100": "io",  # disk_full
    "58030": "io",  # io_error
    "53300": "unavailable",  # too_many_connections
    "57P01": "unavailable",  # admin_shutdown
    "57P02": "unavailable",  # crash_shutdown
    "57P03": "unavailable",  # cannot_connect_now
}


def unavailable_reason(exc: BaseException) -> str | None:
    """ "locked", "readonly", "io" or "unavailable" when `exc` means the database cannot take a
    write now (worth a 503 and a retry); None for any other error (a bug: 500)."""
    if isinstance(exc, DatabaseBusy):
        return exc.reason
    orig: BaseException = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig else exc
    if isinstance(orig, sqlite3.Error):
        if not isinstance(orig, sqlite3.OperationalError | sqlite3.DatabaseError):
            return None
        name = getattr(orig, "sqlite_errorname", "") or ""
        for prefix, reason in _SQLITE_NAMES.items():
            if name == prefix or name.startswith(prefix + "_"):
                return reason
        text = str(orig).lower()
        return next((r for m, r in _SQLITE_MESSAGES.items() if m in text), None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(state, str) and state:
        return _PG_STATES.get(state) or ("unavailable" if state.startswith("08") else None)
    if isinstance(exc, sa.exc.OperationalError) and type(orig).__module__.startswith("psycopg"):
        return "unavailable"  # no SQLSTATE: the server could not be reached at all
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return "unavailable"
    return None


_AFTER_COMMIT = "pressroom.after_commit"


def after_commit(session: Session, action: Callable[[], object]) -> None:
    """Run `action` once the write transaction `session` is in has committed (dropped on a
    rollback), after the write lock is released: e.g. send a job's message to the broker."""
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


def serialize_on(session: Session, name: str) -> None:
    """Hold a lock named `name` until `session`'s transaction ends: writers of the same name
    go one at a time. On SQLite every write transaction holds the one write lock already; on
    PostgreSQL a transaction-level advisory lock (a 63-bit key from the name's SHA-256)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") & 0x7FFFFFFFFFFFFFFF
    session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


@contextmanager
def write_txn() -> Iterator[Session]:
    """One committed write transaction that takes SQLite's write lock before its first read."""
    session = db.session()
    if session.in_transaction():
        session.commit()
    bind = session.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    with _sqlite_write_lock(bind.engine.url.database) if sqlite else nullcontext():
        try:
            session.connection(execution_options={"sqlite_immediate": True})
            yield session
            session.commit()
        except BaseException as exc:
            _rollback(session)
            session.info.pop(_AFTER_COMMIT, None)
            reason = unavailable_reason(exc) if isinstance(exc, Exception) else None
            if reason is not None and not isinstance(exc, DatabaseBusy):
                # SQLite's own busy handler gave up, the file is read-only, the disk failed …
                raise DatabaseBusy(reason=reason) from exc
            raise
    for action in session.info.pop(_AFTER_COMMIT, []):
        action()


def _rollback(session: Session) -> None:
    try:
        session.rollback()
    except sa.exc.DBAPIError:  # the connection itself failed (disk I/O): it is invalidated
        session.close()


def init_app(app: Flask) -> None:
    """Pragmas and BEGIN IMMEDIATE on this app's engine; a forked child opens its own connections."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        # SQLite's own wait (writes outside write_txn, a checkpoint) has the same limit.
        busy_ms = int(float(app.config.get("DB_LOCK_TIMEOUT_S", DEFAULT_LOCK_TIMEOUT_S)) * 1000)
        event.listen(engine, "connect", lambda conn, record: _sqlite_pragmas(conn, record, busy_ms))
        event.listen(engine, "begin", _sqlite_begin)
    elif engine.dialect.name == "postgresql":
        # No flock there: a write that waits for a row or table lock (of a stopped process …)
        # gives up after the same limit (SQLSTATE 55P03: a 503), instead of waiting for good.
        lock_ms = int(float(app.config.get("DB_LOCK_TIMEOUT_S", DEFAULT_LOCK_TIMEOUT_S)) * 1000)
        event.listen(
            engine, "connect", lambda conn, record: _postgres_settings(conn, record, lock_ms)
        )
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, busy_ms: int = 5000) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    # SQLAlchemy emits BEGIN itself (below); pysqlite's own implicit BEGIN would hide it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={max(0, busy_ms)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _postgres_settings(dbapi_connection: Any, _record: Any, lock_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"SET lock_timeout = {max(0, lock_ms)}")
    cursor.close()
    dbapi_connection.commit()  # (a session setting: kept after this transaction)


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


def write_problem(timeout: float = 1.0) -> str | None:
    """Why the database cannot take a write now (English, for /healthz), or None when it can.

    Cheap, and never longer than about `timeout`: on SQLite the write lock (naming a holder
    that keeps it) and a write rolled back on a connection of its own; on PostgreSQL whether
    this server takes writes (not a standby, not read-only) and a job could be inserted (no
    session holds the jobs table), each within `timeout`."""
    engine = db.engine
    try:
        if engine.dialect.name == "sqlite":
            _probe_sqlite(engine.url.database, timeout)
        else:
            _probe_server(engine, timeout)
    except Exception as exc:
        reason = unavailable_reason(exc)
        if reason is None:
            return f"{exc.__class__.__name__}: {str(exc)[:200]}"
        holder = exc.holder if isinstance(exc, DatabaseBusy) else None
        return describe_unavailable(reason, holder)
    return None


def _probe_sqlite(database: str | None, timeout: float) -> None:
    if not database or database == ":memory:":
        return
    with _sqlite_write_lock(database, timeout):
        # mode=rw: a missing file is an error here, not a new empty database.
        conn = sqlite3.connect(
            f"file:{database}?mode=rw", uri=True, timeout=timeout, isolation_level=None
        )
        try:
            conn.execute("BEGIN IMMEDIATE")  # (a read-only connection takes this too …)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute(f"PRAGMA user_version = {int(version)}")  # … but not a write
            conn.execute("ROLLBACK")
        finally:
            conn.close()


def _probe_server(engine: sa.Engine, timeout: float) -> None:
    from webapp.models import Job

    with engine.connect() as conn:
        trans = conn.begin()
        try:
            ms = int(timeout * 1000)
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
            read_only = conn.exec_driver_sql("SHOW transaction_read_only").scalar()
            standby = conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar()
            if read_only != "on" and not standby:
                # The lock every insert of a job takes: free unless a session holds the table.
                conn.exec_driver_sql(f"LOCK TABLE {Job.__tablename__} IN ROW EXCLUSIVE MODE")
        finally:
            trans.rollback()
    if read_only == "on" or standby:
        raise DatabaseBusy(reason="readonly")
