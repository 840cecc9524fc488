"""A throw-away PostgreSQL cluster for the tests: initdb in a temp dir, one server on a free
loopback port, no system service. As root (CI) the server runs as the `postgres` user that
Debian's package creates (PostgreSQL refuses to run as root); otherwise as the current user.

Each caller gets a database of its own (`database()`), created from an empty template in a few
milliseconds; the cluster is removed when the session ends.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from workers.waiting import wait_for

USER = "pressroom"


def binaries() -> Path | None:
    """The folder of Debian's PostgreSQL server binaries (newest version), or pg_ctl's on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl else None


def _version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) to drop to when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


class Cluster:
    """One server; `database()` hands out fresh databases (URLs for SQLAlchemy)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="pr-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.log = self.root / "postgres.log"
        self.ids = _run_as()
        self.process: subprocess.Popen[bytes] | None = None
        if self.ids is not None:
            os.chown(self.root, *self.ids)

    def _preexec(self) -> Callable[[], None] | None:
        if self.ids is None:
            return None
        uid, gid = self.ids

        def drop() -> None:
            os.setgid(gid)
            os.setuid(uid)

        return drop

    def start(self) -> Cluster:
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "-A", "trust"]
            + ["-E", "UTF8", "--locale", "C.UTF-8", "--no-sync"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=self._preexec(),
            cwd=self.root,
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "max_connections": "200",
            # A throw-away cluster: durability off, speed on (never settings for production).
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "64MB",
        }
        argv = [str(self.bin / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=self._preexec()
            )
        wait_for(self._ready, timeout=60, message=f"PostgreSQL did not start: {self.tail()}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited: {self.tail()}")
        try:
            self.execute("SELECT 1")
        except Exception:
            return False
        return True

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={USER} dbname={database}",
            autocommit=True,
            connect_timeout=5,
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def database(self, prefix: str = "t") -> str:
        """A new empty database; → its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # SIGTERM is the "smart" shutdown that waits for clients to leave; SIGINT the fast one.
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)
