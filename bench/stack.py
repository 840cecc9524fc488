"""The real system for the benchmarks: embedded redis-server, Dramatiq workers, gunicorn.

Everything lives in one short folder under /tmp (unix socket paths must stay under 100 bytes)
and every service runs in its own process group, stopped on exit. The benchmark process talks
to the same database and Redis through its own app (`stack.app`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, STAFF_EMAIL, STAFF_PASSWORD, children, hwm_kib, rss_kib, seed_database

from workers.processes import web_processes
from workers.waiting import free_port, wait_for

#: The web processes `pressroom run` starts on this machine (threads: workers.processes).
WEB_PROCESSES = web_processes(os.cpu_count() or 1)

READY_LINE = "Worker process is ready for action."
WARMED_LINE = "web process warmed up"  # webapp/wsgi.py


class Stack:
    """A data folder, redis-server, and on demand workers and a web server."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="prb-", dir="/tmp"))
        self.data = self.dir / "data"
        self.socket = self.dir / "r.sock"
        self.env = {
            **os.environ,
            "PRESSROOM_DATA": str(self.data),
            "REDIS_URL": f"unix://{self.socket}",
            "dramatiq_queue_prefetch": "1",
            "PYTHONPATH": str(ROOT),
        }
        # Each stack's processes count into their own data folder (an earlier stack's is gone).
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        # The in-process app (submit, reading job rows) uses the same data and Redis.
        os.environ.update({k: self.env[k] for k in ("PRESSROOM_DATA", "REDIS_URL")})
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.app: Any = None

    # -- services ---------------------------------------------------------------------------

    def start_redis(self) -> None:
        """Our embedded redis-server (workers.redis_server's binary and config), log to a file."""
        from workers.redis_server import BINARY, wait_ready, write_config

        self.data.mkdir(parents=True, exist_ok=True)
        conf = write_config(self.data, self.socket)
        process = self.spawn("redis", [str(BINARY), str(conf)])
        wait_ready(self.socket, process)

    def init_app(self, lots: int) -> Any:
        """Migrate the database, add the staff user and `lots` demo lots; returns the app."""
        from webapp import create_app

        self.app = create_app({"PRESSROOM_DATA": str(self.data), "METRICS_DIR": None})
        with self.app.app_context():
            seed_database(lots)
        return self.app

    def spawn(self, name: str, argv: list[str], **env: str) -> subprocess.Popen[bytes]:
        log = self.dir / f"{name}.log"
        self.logs[name] = log
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**self.env, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def start_workers(
        self,
        processes: int,
        timeout: float = 120,
        idle_ms: int | None = None,
        chunk_labels: int | None = None,
    ) -> subprocess.Popen[bytes]:
        """`python -m dramatiq … --processes N --threads 1`; returns once every one is ready."""
        log = self.dir / "workers.log"
        log.unlink(missing_ok=True)
        from workers.processes import WORKER_ENV, worker_argv

        env = dict(WORKER_ENV)  # as `pressroom run` starts them
        if idle_ms:
            env["dramatiq_worker_timeout"] = str(idle_ms)
        if chunk_labels:
            env["CHUNK_LABELS"] = str(chunk_labels)
        process = self.spawn("workers", worker_argv(processes), **env)

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"workers exited: {log.read_text()[-2000:]}")
            return log.read_text(errors="replace").count(READY_LINE) >= processes

        wait_for(ready, timeout, message="the workers to be ready")
        return process

    def start_web(self, workers: int, threads: int, timeout: float = 60) -> str:
        """gunicorn (gthread) as in the Procfile; returns its base URL once it answers."""
        port = free_port()
        self.spawn(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--worker-class",
                "gthread",
                "--threads",
                str(threads),
                "--workers",
                str(workers),
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "webapp.wsgi:app",
            ],
        )

        def answers() -> bool:
            if self.processes["web"].poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.logs['web'].read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_for(answers, timeout, message="gunicorn to listen")

        def warmed() -> bool:  # each web process logs this before it takes requests
            return self.logs["web"].read_text(errors="replace").count(WARMED_LINE) >= workers

        wait_for(warmed, timeout, message="every web process to warm up")
        return f"http://127.0.0.1:{port}"

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)

    def close(self) -> None:
        for name in [n for n in self.processes if n != "redis"]:
            self.stop(name)
        if self.app is not None:
            from webapp.extensions import db

            with self.app.app_context():
                db.session.remove()
                db.engine.dispose()
        self.stop("redis")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- HTTP helpers (standard library only) -------------------------------------------------------


def run_job(stack: Stack, master_pid: int, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Submit one job and wait for it: wall and submit time, file size, parts, worker memory."""
    import sqlalchemy as sa

    from webapp import jobs
    from webapp.extensions import db
    from webapp.models import Artifact, Job, User

    with stack.app.app_context():
        user = db.session.scalars(sa.select(User)).first()
        workers = children(master_pid)
        peak = rss_kib(workers)
        started = time.perf_counter()
        job, created = jobs.submit(user, kind, params)
        submitted = time.perf_counter() - started
        assert created, "the job was deduplicated: the benchmark must not reuse a file"
        while True:
            status, artifact_id, error = db.session.execute(
                sa.select(Job.status, Job.artifact_id, Job.error_code).where(Job.id == job.id)
            ).one()
            db.session.commit()  # the next read sees the workers' commits
            if status in ("done", "failed", "cancelled"):
                break
            peak = max(peak, rss_kib(workers))
            time.sleep(0.01)  # poll interval of a condition wait
        wall = time.perf_counter() - started
        if status != "done":
            raise RuntimeError(f"job {job.id} ended {status}: {error}")
        size = db.session.get(Artifact, artifact_id).size
        chunks = db.session.scalar(sa.select(Job.chunks_total).where(Job.id == job.id)) or 1
    return {
        "wall": wall,
        "submit": submitted,
        "size": size,
        "chunks": chunks,
        "peak_sum_kib": peak,
        "hwm_kib": max(hwm_kib(pid) for pid in workers),
    }


def create_token(stack: Stack) -> str:
    """An API token for the staff user, made in-process as `flask tokens create` does."""
    import sqlalchemy as sa

    from webapp.auth import create_token as make
    from webapp.extensions import db
    from webapp.models import User

    with stack.app.app_context():
        user = db.session.scalars(sa.select(User).where(User.email == STAFF_EMAIL)).one()
        return make(user)


def login_cookie(base: str, email: str = STAFF_EMAIL, password: str = STAFF_PASSWORD) -> str:
    """Log in through the real form (CSRF token included); returns the Cookie header value."""
    import http.client
    import re
    from urllib.parse import urlencode, urlsplit

    host = urlsplit(base)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    try:
        conn.request("GET", "/login")
        page = conn.getresponse()
        body = page.read().decode()
        cookies = _cookies(page.headers.get_all("Set-Cookie") or [])
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', body)
        form = {"email": email, "password": password}
        if token:
            form["csrf_token"] = token.group(1)
        conn.request(
            "POST",
            "/login",
            body=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": _header(cookies),
            },
        )
        answer = conn.getresponse()
        answer.read()
        if answer.status != 302:
            raise RuntimeError(f"login failed: HTTP {answer.status}")
        cookies.update(_cookies(answer.headers.get_all("Set-Cookie") or []))
        return _header(cookies)
    finally:
        conn.close()


def _cookies(lines: list[str]) -> dict[str, str]:
    return dict(line.split(";", 1)[0].split("=", 1) for line in lines)


def _header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in cookies.items())
